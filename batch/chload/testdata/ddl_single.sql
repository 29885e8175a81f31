-- migration 1: job run history
CREATE TABLE IF NOT EXISTS batch_job_runs (
    job String,
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    attempt UInt16,
    status String,
    started DateTime('UTC'),
    started_ms UInt16,
    finished DateTime('UTC'),
    finished_ms UInt16,
    rows_read UInt64,
    rows_written UInt64,
    error String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(interval_start)
ORDER BY (job, interval_start, started)

-- migration 2: event tables, schemas version 1
CREATE TABLE IF NOT EXISTS `events_auth`
(
    `timestamp` DateTime('UTC'),
    `timestamp_ms` UInt16,
    `host_name` String,
    `event_original` String,
    `parse_version` UInt16,
    `kafka_topic` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `kafka_timestamp` DateTime('UTC'),
    `kafka_timestamp_ms` UInt16,
    `ingest_time` DateTime('UTC'),
    `ingest_time_ms` UInt16,
    `process_name` String,
    `process_pid` Int64,
    `user_name` String,
    `source_ip` String,
    `source_port` UInt16,
    `source_domain` String,
    `auth_method` String,
    `event_outcome` String,
    `event_action` String,
    `event_reason` String,
    `event_count` Int64
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`event_action`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `events_auth__staging` AS `events_auth`;
CREATE TABLE IF NOT EXISTS `events_firewall`
(
    `timestamp` DateTime('UTC'),
    `timestamp_ms` UInt16,
    `host_name` String,
    `event_original` String,
    `parse_version` UInt16,
    `kafka_topic` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `kafka_timestamp` DateTime('UTC'),
    `kafka_timestamp_ms` UInt16,
    `ingest_time` DateTime('UTC'),
    `ingest_time_ms` UInt16,
    `event_action` String,
    `network_transport` String,
    `network_type` String,
    `source_ip` String,
    `source_port` UInt16,
    `destination_ip` String,
    `destination_port` UInt16,
    `observer_ingress_interface_name` String,
    `observer_egress_interface_name` String,
    `network_bytes` Int64,
    `network_packets` Int64,
    `rule_name` String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`event_action`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `events_firewall__staging` AS `events_firewall`;
CREATE TABLE IF NOT EXISTS `events_ids`
(
    `timestamp` DateTime('UTC'),
    `timestamp_ms` UInt16,
    `host_name` String,
    `event_original` String,
    `parse_version` UInt16,
    `kafka_topic` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `kafka_timestamp` DateTime('UTC'),
    `kafka_timestamp_ms` UInt16,
    `ingest_time` DateTime('UTC'),
    `ingest_time_ms` UInt16,
    `rule_id` Int64,
    `rule_name` String,
    `rule_category` String,
    `event_severity` Int64,
    `network_transport` String,
    `network_protocol` String,
    `source_ip` String,
    `source_port` UInt16,
    `destination_ip` String,
    `destination_port` UInt16,
    `event_action` String,
    `flow_id` Int64,
    `observer_ingress_interface_name` String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`rule_category`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `events_ids__staging` AS `events_ids`;
CREATE TABLE IF NOT EXISTS `events_web`
(
    `timestamp` DateTime('UTC'),
    `timestamp_ms` UInt16,
    `host_name` String,
    `event_original` String,
    `parse_version` UInt16,
    `kafka_topic` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `kafka_timestamp` DateTime('UTC'),
    `kafka_timestamp_ms` UInt16,
    `ingest_time` DateTime('UTC'),
    `ingest_time_ms` UInt16,
    `source_ip` String,
    `user_name` String,
    `http_request_method` String,
    `url_path` String,
    `url_query` String,
    `http_version` String,
    `http_response_status_code` UInt16,
    `http_response_body_bytes` Int64,
    `http_request_referrer` String,
    `user_agent_original` String,
    `event_duration` Int64,
    `destination_ip` String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `events_web__staging` AS `events_web`;
CREATE TABLE IF NOT EXISTS `events_syslog`
(
    `timestamp` DateTime('UTC'),
    `timestamp_ms` UInt16,
    `host_name` String,
    `event_original` String,
    `parse_version` UInt16,
    `kafka_topic` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `kafka_timestamp` DateTime('UTC'),
    `kafka_timestamp_ms` UInt16,
    `ingest_time` DateTime('UTC'),
    `ingest_time_ms` UInt16,
    `process_name` String,
    `process_pid` Int64,
    `message` String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`host_name`, `process_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `events_syslog__staging` AS `events_syslog`;
CREATE TABLE IF NOT EXISTS `events_quarantine`
(
    `timestamp` DateTime('UTC'),
    `timestamp_ms` UInt16,
    `host_name` String,
    `event_original` String,
    `parse_version` UInt16,
    `kafka_topic` String,
    `kafka_partition` Int32,
    `kafka_offset` Int64,
    `kafka_timestamp` DateTime('UTC'),
    `kafka_timestamp_ms` UInt16,
    `ingest_time` DateTime('UTC'),
    `ingest_time_ms` UInt16,
    `raw` String,
    `source_format` String,
    `error_reason` String,
    `error_message` String
)
ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`source_format`, `error_reason`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `events_quarantine__staging` AS `events_quarantine`;

-- migration 3: report tables
CREATE TABLE IF NOT EXISTS `report_auth_ip_hour` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `source_ip` String,
    `failures` UInt64,
    `successes` UInt64,
    `invalid_user` UInt64,
    `distinct_users` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_auth_ip_hour__staging` AS `report_auth_ip_hour`;
CREATE TABLE IF NOT EXISTS `report_auth_user_hour` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `user_name` String,
    `failures` UInt64,
    `successes` UInt64,
    `invalid_user` UInt64,
    `distinct_ips` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `user_name`);
CREATE TABLE IF NOT EXISTS `report_auth_user_hour__staging` AS `report_auth_user_hour`;
CREATE TABLE IF NOT EXISTS `report_auth_ip_day` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `source_ip` String,
    `failures` UInt64,
    `successes` UInt64,
    `invalid_user` UInt64,
    `distinct_users` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_auth_ip_day__staging` AS `report_auth_ip_day`;
CREATE TABLE IF NOT EXISTS `report_auth_user_day` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `user_name` String,
    `failures` UInt64,
    `successes` UInt64,
    `invalid_user` UInt64,
    `distinct_ips` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `user_name`);
CREATE TABLE IF NOT EXISTS `report_auth_user_day__staging` AS `report_auth_user_day`;
CREATE TABLE IF NOT EXISTS `report_auth_top_sources` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `rank` UInt16,
    `source_ip` String,
    `failures` UInt64,
    `successes` UInt64,
    `invalid_user` UInt64,
    `distinct_users` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `rank`, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_auth_top_sources__staging` AS `report_auth_top_sources`;
CREATE TABLE IF NOT EXISTS `report_firewall_ip_port_hour` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `source_ip` String,
    `destination_port` UInt16,
    `denied` UInt64,
    `dropped` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `source_ip`, `destination_port`);
CREATE TABLE IF NOT EXISTS `report_firewall_ip_port_hour__staging` AS `report_firewall_ip_port_hour`;
CREATE TABLE IF NOT EXISTS `report_firewall_scan_day` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `source_ip` String,
    `blocked` UInt64,
    `distinct_ports` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_firewall_scan_day__staging` AS `report_firewall_scan_day`;
CREATE TABLE IF NOT EXISTS `report_firewall_top_ports` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `rank` UInt16,
    `destination_port` UInt16,
    `blocked` UInt64,
    `distinct_sources` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `rank`, `destination_port`);
CREATE TABLE IF NOT EXISTS `report_firewall_top_ports__staging` AS `report_firewall_top_ports`;
CREATE TABLE IF NOT EXISTS `report_ids_alerts_hour` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `rule_id` Int64,
    `rule_name` String,
    `rule_category` String,
    `event_severity` Int64,
    `source_ip` String,
    `alerts` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `rule_id`, `rule_name`, `rule_category`, `event_severity`, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_ids_alerts_hour__staging` AS `report_ids_alerts_hour`;
CREATE TABLE IF NOT EXISTS `report_ids_ip_day` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `source_ip` String,
    `alerts` UInt64,
    `severity1` UInt64,
    `severity2` UInt64,
    `distinct_signatures` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_ids_ip_day__staging` AS `report_ids_ip_day`;
CREATE TABLE IF NOT EXISTS `report_web_status_hour` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `requests` UInt64,
    `status_1xx` UInt64,
    `status_2xx` UInt64,
    `status_3xx` UInt64,
    `status_4xx` UInt64,
    `status_5xx` UInt64,
    `bytes` Int64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start);
CREATE TABLE IF NOT EXISTS `report_web_status_hour__staging` AS `report_web_status_hour`;
CREATE TABLE IF NOT EXISTS `report_web_client_hour` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `source_ip` String,
    `requests` UInt64,
    `status_4xx` UInt64,
    `status_5xx` UInt64,
    `bytes` Int64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_web_client_hour__staging` AS `report_web_client_hour`;
CREATE TABLE IF NOT EXISTS `report_web_top_clients` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `rank` UInt16,
    `source_ip` String,
    `requests` UInt64,
    `status_4xx` UInt64,
    `status_5xx` UInt64,
    `bytes` Int64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `rank`, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_web_top_clients__staging` AS `report_web_top_clients`;
CREATE TABLE IF NOT EXISTS `report_web_top_paths` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `rank` UInt16,
    `url_path` String,
    `requests` UInt64,
    `status_4xx` UInt64,
    `status_5xx` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `rank`, `url_path`);
CREATE TABLE IF NOT EXISTS `report_web_top_paths__staging` AS `report_web_top_paths`;
CREATE TABLE IF NOT EXISTS `report_metrics` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `metric` String,
    `key` String,
    `value` Int64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `metric`, `key`);
CREATE TABLE IF NOT EXISTS `report_metrics__staging` AS `report_metrics`;
CREATE TABLE IF NOT EXISTS `report_security_summary` (
    interval_start DateTime('UTC'),
    interval_end DateTime('UTC'),
    period_start DateTime('UTC'),
    `rank` UInt16,
    `source_ip` String,
    `risk` Int64,
    `auth_failures` UInt64,
    `auth_distinct_users` UInt64,
    `firewall_blocked` UInt64,
    `firewall_distinct_ports` UInt64,
    `ids_alerts` UInt64,
    `ids_severity1` UInt64,
    `ids_severity2` UInt64,
    `web_requests` UInt64,
    `web_4xx` UInt64,
    `web_5xx` UInt64,
    computed_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(interval_start)
ORDER BY (period_start, `rank`, `source_ip`);
CREATE TABLE IF NOT EXISTS `report_security_summary__staging` AS `report_security_summary`;

-- queries/merge rt_metric_minutes
CREATE TABLE IF NOT EXISTS rt_metric_minutes (
    metric String,
    key String,
    minute DateTime('UTC'),
    value Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (metric, key, minute);
