-- name: events_per_day
-- title: Events per day
-- description: Parsed events per dataset and event-time UTC day, counted in the event tables (quarantined lines excluded). A dataset with no events on a day has no row.
-- param: from date default=today-6 -- first day (UTC), inclusive
-- param: to date default=today -- last day (UTC), inclusive
-- columns: day, dataset, events
SELECT toString(toDate(timestamp, 'UTC')) AS day, dataset, count() AS events
FROM (
    SELECT timestamp, 'auth' AS dataset FROM events_auth WHERE timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT timestamp, 'firewall' AS dataset FROM events_firewall WHERE timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT timestamp, 'ids' AS dataset FROM events_ids WHERE timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT timestamp, 'web' AS dataset FROM events_web WHERE timestamp >= {from:start} AND timestamp < {to:end}
    UNION ALL
    SELECT timestamp, 'syslog' AS dataset FROM events_syslog WHERE timestamp >= {from:start} AND timestamp < {to:end}
)
GROUP BY day, dataset
ORDER BY day, dataset
