-- name: distributed_bruteforce
-- title: Distributed brute force by user
-- description: User names whose logins failed from at least min_ips distinct source IPs within one hour (many sources, one account); from the batch view report_auth_user_hour.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: min_ips int default=5 min=1 max=1000000 -- distinct source IPs in one hour
-- param: limit int default=100 min=1 max=100000 -- most rows returned
-- columns: user_name, max_distinct_ips, failures, hours
SELECT user_name, mi AS max_distinct_ips, f AS failures, h AS hours
FROM (
    SELECT user_name, max(distinct_ips) AS mi, sum(failures) AS f, count() AS h
    FROM report_auth_user_hour
    WHERE period_start >= {from:start} AND period_start < {to:end} AND distinct_ips >= {min_ips}
    GROUP BY user_name
)
ORDER BY max_distinct_ips DESC, failures DESC, user_name
LIMIT {limit}
