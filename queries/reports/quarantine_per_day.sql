-- name: quarantine_per_day
-- title: Quarantined lines per day
-- description: Lines the parsers rejected, per UTC day (of quarantine time), source format and reason; from the quarantine event table.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- columns: day, source_format, error_reason, lines
SELECT toString(toDate(timestamp, 'UTC')) AS day, source_format, error_reason, count() AS lines
FROM events_quarantine
WHERE timestamp >= {from:start} AND timestamp < {to:end}
GROUP BY day, source_format, error_reason
ORDER BY day, lines DESC, source_format, error_reason
