-- name: top_attackers
-- title: Top attacking sources (SSH)
-- description: Source IPs by failed logins over the days, with invalid-user attempts, successes and the most distinct users tried in one day; from the batch view report_auth_ip_day.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=20 min=1 max=10000 -- most rows returned
-- columns: source_ip, failures, invalid_user, successes, max_distinct_users, days
SELECT source_ip, f AS failures, iu AS invalid_user, s AS successes, mu AS max_distinct_users, d AS days
FROM (
    SELECT source_ip, sum(failures) AS f, sum(invalid_user) AS iu, sum(successes) AS s,
           max(distinct_users) AS mu, uniqExact(period_start) AS d
    FROM report_auth_ip_day
    WHERE period_start >= {from:start} AND period_start < {to:end} AND failures > 0
    GROUP BY source_ip
)
ORDER BY failures DESC, source_ip
LIMIT {limit}
