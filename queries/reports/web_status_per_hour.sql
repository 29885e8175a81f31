-- name: web_status_per_hour
-- title: Web responses per hour
-- description: HTTP requests per hour by status class and bytes sent; from the batch view report_web_status_hour.
-- param: from date default=today-1 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- columns: hour, requests, status_2xx, status_3xx, status_4xx, status_5xx, bytes
SELECT toString(period_start, 'UTC') AS hour, requests, status_2xx, status_3xx, status_4xx, status_5xx, bytes
FROM report_web_status_hour
WHERE period_start >= {from:start} AND period_start < {to:end}
ORDER BY period_start
