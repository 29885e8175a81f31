-- name: daily_security_summary
-- title: Daily security summary
-- description: The riskiest sources of each day with their risk score and what they did in every dataset (risk weights in docs/batch.md); from the batch view report_security_summary.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=20 min=1 max=20 -- sources per day (the batch job keeps 20)
-- columns: day, rank, source_ip, risk, auth_failures, auth_distinct_users, firewall_blocked, firewall_distinct_ports, ids_alerts, web_4xx
SELECT toString(toDate(period_start, 'UTC')) AS day, rank, source_ip, risk, auth_failures, auth_distinct_users,
       firewall_blocked, firewall_distinct_ports, ids_alerts, web_4xx
FROM report_security_summary
WHERE period_start >= {from:start} AND period_start < {to:end} AND rank <= {limit}
ORDER BY day, rank
