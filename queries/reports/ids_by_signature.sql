-- name: ids_by_signature
-- title: IDS alerts by signature
-- description: Suricata alerts per signature (id, name, category, severity) with the number of distinct sources, most alerts first; from the batch view report_ids_alerts_hour.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- param: limit int default=50 min=1 max=100000 -- most rows returned
-- columns: rule_id, rule_name, rule_category, severity, alerts, distinct_sources
SELECT rule_id, rule_name, rule_category, severity, a AS alerts, distinct_sources
FROM (
    SELECT rule_id, rule_name, rule_category, event_severity AS severity, sum(alerts) AS a, uniqExact(source_ip) AS distinct_sources
    FROM report_ids_alerts_hour
    WHERE period_start >= {from:start} AND period_start < {to:end}
    GROUP BY rule_id, rule_name, rule_category, event_severity
)
ORDER BY alerts DESC, rule_id
LIMIT {limit}
