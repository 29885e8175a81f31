-- name: user_activity
-- title: Logins of one user by source IP
-- description: For one user name: failed and successful logins per source IP, with first and last attempt (UTC). Ad-hoc, on the auth event table.
-- param: user string -- the user name as logged (case-sensitive)
-- param: from date default=today-29 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=100 min=1 max=100000 -- most rows returned
-- columns: source_ip, failures, successes, first_seen, last_seen
SELECT source_ip,
       countIf(event_outcome = 'failure') AS failures,
       countIf(event_outcome = 'success') AS successes,
       toString(min(timestamp), 'UTC') AS first_seen,
       toString(max(timestamp), 'UTC') AS last_seen
FROM events_auth
WHERE user_name = {user} AND event_outcome IN ('failure', 'success') AND timestamp >= {from:start} AND timestamp < {to:end}
GROUP BY source_ip
ORDER BY failures DESC, source_ip
LIMIT {limit}
