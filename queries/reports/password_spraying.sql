-- name: password_spraying
-- title: Password spraying
-- description: Source IPs that tried at least min_users distinct user names within one hour (one password against many accounts), with their failures; from the batch view report_auth_ip_hour.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: min_users int default=5 min=1 max=1000000 -- distinct users tried in one hour
-- param: limit int default=100 min=1 max=100000 -- most rows returned
-- columns: source_ip, max_distinct_users, failures, hours
SELECT source_ip, mu AS max_distinct_users, f AS failures, h AS hours
FROM (
    SELECT source_ip, max(distinct_users) AS mu, sum(failures) AS f, count() AS h
    FROM report_auth_ip_hour
    WHERE period_start >= {from:start} AND period_start < {to:end} AND distinct_users >= {min_users}
    GROUP BY source_ip
)
ORDER BY max_distinct_users DESC, failures DESC, source_ip
LIMIT {limit}
