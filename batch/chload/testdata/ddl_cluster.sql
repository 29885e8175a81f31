-- migration 1: job run history
CREATE TABLE IF NOT EXISTS `lambdalog`.`batch_job_runs_local` ON CLUSTER `logs` (
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
ORDER BY (job, interval_start, started);
CREATE TABLE IF NOT EXISTS `lambdalog`.`batch_job_runs` ON CLUSTER `logs` AS `lambdalog`.`batch_job_runs_local` ENGINE = Distributed('logs', 'lambdalog', 'batch_job_runs_local', cityHash64(job))

-- migration 2: event tables, schemas version 1
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_auth_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`event_action`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_auth` ON CLUSTER `logs` AS `lambdalog`.`events_auth_local` ENGINE = Distributed('logs', 'lambdalog', 'events_auth_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_auth__staging_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`event_action`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_auth__staging` ON CLUSTER `logs` AS `lambdalog`.`events_auth__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'events_auth__staging_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_firewall_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`event_action`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_firewall` ON CLUSTER `logs` AS `lambdalog`.`events_firewall_local` ENGINE = Distributed('logs', 'lambdalog', 'events_firewall_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_firewall__staging_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`event_action`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_firewall__staging` ON CLUSTER `logs` AS `lambdalog`.`events_firewall__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'events_firewall__staging_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_ids_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`rule_category`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_ids` ON CLUSTER `logs` AS `lambdalog`.`events_ids_local` ENGINE = Distributed('logs', 'lambdalog', 'events_ids_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_ids__staging_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`rule_category`, `host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_ids__staging` ON CLUSTER `logs` AS `lambdalog`.`events_ids__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'events_ids__staging_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_web_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_web` ON CLUSTER `logs` AS `lambdalog`.`events_web_local` ENGINE = Distributed('logs', 'lambdalog', 'events_web_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_web__staging_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`host_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_web__staging` ON CLUSTER `logs` AS `lambdalog`.`events_web__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'events_web__staging_local', cityHash64(source_ip));
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_syslog_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`host_name`, `process_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_syslog` ON CLUSTER `logs` AS `lambdalog`.`events_syslog_local` ENGINE = Distributed('logs', 'lambdalog', 'events_syslog_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_syslog__staging_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`host_name`, `process_name`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_syslog__staging` ON CLUSTER `logs` AS `lambdalog`.`events_syslog__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'events_syslog__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_quarantine_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`source_format`, `error_reason`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_quarantine` ON CLUSTER `logs` AS `lambdalog`.`events_quarantine_local` ENGINE = Distributed('logs', 'lambdalog', 'events_quarantine_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_quarantine__staging_local` ON CLUSTER `logs` (
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
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(timestamp)
ORDER BY (`source_format`, `error_reason`, `timestamp`)
SETTINGS index_granularity = 8192;
CREATE TABLE IF NOT EXISTS `lambdalog`.`events_quarantine__staging` ON CLUSTER `logs` AS `lambdalog`.`events_quarantine__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'events_quarantine__staging_local', rand());

-- migration 3: report tables
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_hour_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_hour` ON CLUSTER `logs` AS `lambdalog`.`report_auth_ip_hour_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_ip_hour_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_hour__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_hour__staging` ON CLUSTER `logs` AS `lambdalog`.`report_auth_ip_hour__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_ip_hour__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_hour_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_hour` ON CLUSTER `logs` AS `lambdalog`.`report_auth_user_hour_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_user_hour_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_hour__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_hour__staging` ON CLUSTER `logs` AS `lambdalog`.`report_auth_user_hour__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_user_hour__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_day_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_day` ON CLUSTER `logs` AS `lambdalog`.`report_auth_ip_day_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_ip_day_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_day__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_ip_day__staging` ON CLUSTER `logs` AS `lambdalog`.`report_auth_ip_day__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_ip_day__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_day_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_day` ON CLUSTER `logs` AS `lambdalog`.`report_auth_user_day_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_user_day_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_day__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_user_day__staging` ON CLUSTER `logs` AS `lambdalog`.`report_auth_user_day__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_user_day__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_top_sources_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_top_sources` ON CLUSTER `logs` AS `lambdalog`.`report_auth_top_sources_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_top_sources_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_top_sources__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_auth_top_sources__staging` ON CLUSTER `logs` AS `lambdalog`.`report_auth_top_sources__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_auth_top_sources__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_ip_port_hour_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_ip_port_hour` ON CLUSTER `logs` AS `lambdalog`.`report_firewall_ip_port_hour_local` ENGINE = Distributed('logs', 'lambdalog', 'report_firewall_ip_port_hour_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_ip_port_hour__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_ip_port_hour__staging` ON CLUSTER `logs` AS `lambdalog`.`report_firewall_ip_port_hour__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_firewall_ip_port_hour__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_scan_day_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_scan_day` ON CLUSTER `logs` AS `lambdalog`.`report_firewall_scan_day_local` ENGINE = Distributed('logs', 'lambdalog', 'report_firewall_scan_day_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_scan_day__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_scan_day__staging` ON CLUSTER `logs` AS `lambdalog`.`report_firewall_scan_day__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_firewall_scan_day__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_top_ports_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_top_ports` ON CLUSTER `logs` AS `lambdalog`.`report_firewall_top_ports_local` ENGINE = Distributed('logs', 'lambdalog', 'report_firewall_top_ports_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_top_ports__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_firewall_top_ports__staging` ON CLUSTER `logs` AS `lambdalog`.`report_firewall_top_ports__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_firewall_top_ports__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_alerts_hour_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_alerts_hour` ON CLUSTER `logs` AS `lambdalog`.`report_ids_alerts_hour_local` ENGINE = Distributed('logs', 'lambdalog', 'report_ids_alerts_hour_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_alerts_hour__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_alerts_hour__staging` ON CLUSTER `logs` AS `lambdalog`.`report_ids_alerts_hour__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_ids_alerts_hour__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_ip_day_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_ip_day` ON CLUSTER `logs` AS `lambdalog`.`report_ids_ip_day_local` ENGINE = Distributed('logs', 'lambdalog', 'report_ids_ip_day_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_ip_day__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_ids_ip_day__staging` ON CLUSTER `logs` AS `lambdalog`.`report_ids_ip_day__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_ids_ip_day__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_status_hour_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_status_hour` ON CLUSTER `logs` AS `lambdalog`.`report_web_status_hour_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_status_hour_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_status_hour__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_status_hour__staging` ON CLUSTER `logs` AS `lambdalog`.`report_web_status_hour__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_status_hour__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_client_hour_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_client_hour` ON CLUSTER `logs` AS `lambdalog`.`report_web_client_hour_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_client_hour_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_client_hour__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_client_hour__staging` ON CLUSTER `logs` AS `lambdalog`.`report_web_client_hour__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_client_hour__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_clients_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_clients` ON CLUSTER `logs` AS `lambdalog`.`report_web_top_clients_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_top_clients_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_clients__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_clients__staging` ON CLUSTER `logs` AS `lambdalog`.`report_web_top_clients__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_top_clients__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_paths_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_paths` ON CLUSTER `logs` AS `lambdalog`.`report_web_top_paths_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_top_paths_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_paths__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_web_top_paths__staging` ON CLUSTER `logs` AS `lambdalog`.`report_web_top_paths__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_web_top_paths__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_metrics_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_metrics` ON CLUSTER `logs` AS `lambdalog`.`report_metrics_local` ENGINE = Distributed('logs', 'lambdalog', 'report_metrics_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_metrics__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_metrics__staging` ON CLUSTER `logs` AS `lambdalog`.`report_metrics__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_metrics__staging_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_security_summary_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_security_summary` ON CLUSTER `logs` AS `lambdalog`.`report_security_summary_local` ENGINE = Distributed('logs', 'lambdalog', 'report_security_summary_local', rand());
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_security_summary__staging_local` ON CLUSTER `logs` (
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
CREATE TABLE IF NOT EXISTS `lambdalog`.`report_security_summary__staging` ON CLUSTER `logs` AS `lambdalog`.`report_security_summary__staging_local` ENGINE = Distributed('logs', 'lambdalog', 'report_security_summary__staging_local', rand());

-- queries/merge rt_metric_minutes
CREATE TABLE IF NOT EXISTS `lambdalog`.`rt_metric_minutes_local` ON CLUSTER `logs` (
    metric String,
    key String,
    minute DateTime('UTC'),
    value Int64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (metric, key, minute);
CREATE TABLE IF NOT EXISTS `lambdalog`.`rt_metric_minutes` ON CLUSTER `logs` AS `lambdalog`.`rt_metric_minutes_local` ENGINE = Distributed('logs', 'lambdalog', 'rt_metric_minutes_local', cityHash64(metric, key));
