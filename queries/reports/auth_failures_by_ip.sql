-- name: auth_failures_by_ip
-- title: Authentication failures by source IP
-- description: Failed logins (auth events with outcome failure) per source IP, with the first and last failure (UTC, to the second), most failures first; from the auth event table.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=100 min=1 max=100000 -- most rows returned
-- columns: source_ip, failures, first_seen, last_seen
SELECT source_ip, count() AS failures,
       toString(min(timestamp), 'UTC') AS first_seen,
       toString(max(timestamp), 'UTC') AS last_seen
FROM events_auth
WHERE event_outcome = 'failure' AND timestamp >= {from:start} AND timestamp < {to:end}
GROUP BY source_ip
ORDER BY failures DESC, source_ip
LIMIT {limit}
