-- name: blocked_ports
-- title: Most blocked destination ports
-- description: Destination ports by packets denied or dropped, with the number of distinct sources blocked on them; from the batch view report_firewall_ip_port_hour.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=20 min=1 max=65536 -- most rows returned
-- columns: destination_port, blocked, distinct_sources
SELECT destination_port, sum(denied + dropped) AS blocked, uniqExact(source_ip) AS distinct_sources
FROM report_firewall_ip_port_hour
WHERE period_start >= {from:start} AND period_start < {to:end} AND denied + dropped > 0
GROUP BY destination_port
ORDER BY blocked DESC, destination_port
LIMIT {limit}
