-- name: bruteforce_timeline
-- title: Brute-force timeline
-- description: Hours in which one source IP failed at least min_failures logins, oldest first; from the batch view report_auth_ip_hour.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: min_failures int default=10 min=1 max=1000000 -- failed logins in the hour to be listed
-- param: limit int default=1000 min=1 max=100000 -- most rows returned
-- columns: hour, source_ip, failures, distinct_users
SELECT toString(period_start, 'UTC') AS hour, source_ip, failures, distinct_users
FROM report_auth_ip_hour
WHERE period_start >= {from:start} AND period_start < {to:end} AND failures >= {min_failures}
ORDER BY period_start, failures DESC, source_ip
LIMIT {limit}
