-- name: web_errors_by_client
-- title: Web errors by client
-- description: Client IPs by HTTP 4xx responses, with 5xx, requests and the error share; from the batch view report_web_client_hour.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=50 min=1 max=100000 -- most rows returned
-- columns: source_ip, status_4xx, status_5xx, requests, error_ratio
SELECT source_ip, e4 AS status_4xx, e5 AS status_5xx, r AS requests, round((e4 + e5) / r, 4) AS error_ratio
FROM (
    SELECT source_ip, sum(status_4xx) AS e4, sum(status_5xx) AS e5, sum(requests) AS r
    FROM report_web_client_hour
    WHERE period_start >= {from:start} AND period_start < {to:end}
    GROUP BY source_ip
    HAVING e4 + e5 > 0
)
ORDER BY status_4xx DESC, status_5xx DESC, source_ip
LIMIT {limit}
