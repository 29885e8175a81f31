-- name: port_scans
-- title: Port scans
-- description: Source IPs blocked (denied or dropped) on at least min_ports distinct destination ports in one day; from the batch view report_firewall_scan_day.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: min_ports int default=10 min=1 max=65536 -- distinct ports blocked in one day
-- param: limit int default=100 min=1 max=100000 -- most rows returned
-- columns: source_ip, max_distinct_ports, blocked, days
SELECT source_ip, mp AS max_distinct_ports, b AS blocked, d AS days
FROM (
    SELECT source_ip, max(distinct_ports) AS mp, sum(blocked) AS b, count() AS d
    FROM report_firewall_scan_day
    WHERE period_start >= {from:start} AND period_start < {to:end} AND distinct_ports >= {min_ports}
    GROUP BY source_ip
)
ORDER BY max_distinct_ports DESC, blocked DESC, source_ip
LIMIT {limit}
