-- name: ip_activity
-- title: Activity of one IP across all datasets
-- description: For one IP: events per dataset where it is the source (or, for firewall, IDS and web, the destination), with first and last seen (UTC). Ad-hoc, on the event tables.
-- param: ip ip -- the address to look up
-- param: from date default=today-29 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- columns: dataset, role, events, first_seen, last_seen
SELECT dataset, role, count() AS events,
       toString(min(timestamp), 'UTC') AS first_seen,
       toString(max(timestamp), 'UTC') AS last_seen
FROM (
    SELECT 'auth' AS dataset, 'source' AS role, timestamp FROM events_auth WHERE source_ip = {ip} AND timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT 'firewall' AS dataset, if(source_ip = {ip}, 'source', 'destination') AS role, timestamp FROM events_firewall WHERE (source_ip = {ip} OR destination_ip = {ip}) AND timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT 'ids' AS dataset, if(source_ip = {ip}, 'source', 'destination') AS role, timestamp FROM events_ids WHERE (source_ip = {ip} OR destination_ip = {ip}) AND timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT 'web' AS dataset, if(source_ip = {ip}, 'source', 'destination') AS role, timestamp FROM events_web WHERE (source_ip = {ip} OR destination_ip = {ip}) AND timestamp >= {from:start} AND timestamp < {to:end}
)
GROUP BY dataset, role
ORDER BY dataset, role
