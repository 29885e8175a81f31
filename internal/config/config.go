// Package config is lambdalog's configuration: one YAML file, overridden by
// LAMBDALOG_* environment variables, overridden in turn by command-line flags.
//
// The struct below is the single definition of every key: the YAML decoder,
// the environment overrides, the validator (Check) and the printed, masked
// view (Masked) are all derived from its field tags, and docs/configuration.md
// documents it key by key (a test keeps the two in step).
package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the whole effective configuration of a lambdalog process.
type Config struct {
	Kafka      Kafka      `yaml:"kafka"`
	Topics     Topics     `yaml:"topics"`
	Dataset    Dataset    `yaml:"dataset"`
	ClickHouse ClickHouse `yaml:"clickhouse"`
	Consumer   Consumer   `yaml:"consumer"`
	Realtime   Realtime   `yaml:"realtime"`
	Batch      Batch      `yaml:"batch"`
	Serve      Serve      `yaml:"serve"`
	Metrics    Metrics    `yaml:"metrics"`
	Log        Log        `yaml:"log"`
}

// Kafka says how to reach the Kafka cluster.
type Kafka struct {
	Brokers  []string `yaml:"brokers" doc:"seed brokers, host:port"`
	ClientID string   `yaml:"client_id" doc:"client.id sent to the brokers"`
	TLS      TLS      `yaml:"tls"`
	SASL     SASL     `yaml:"sasl"`
}

// TLS configures a TLS client connection.
type TLS struct {
	Enabled            bool   `yaml:"enabled" doc:"use TLS"`
	CAFile             string `yaml:"ca_file" doc:"PEM file of the CA(s) to trust; system roots when empty"`
	CertFile           string `yaml:"cert_file" doc:"PEM client certificate, for mutual TLS"`
	KeyFile            string `yaml:"key_file" doc:"PEM client key, for mutual TLS"`
	ServerName         string `yaml:"server_name" doc:"name to verify in the server certificate, when it differs from the host"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"do not verify the server certificate (testing only)"`
}

// SASL configures Kafka SASL authentication.
type SASL struct {
	Mechanism    string `yaml:"mechanism" doc:"empty (off), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	Username     string `yaml:"username" doc:"SASL user"`
	Password     Secret `yaml:"password" doc:"SASL password (prefer password_file or the environment)"`
	PasswordFile string `yaml:"password_file" doc:"file holding the SASL password"`
}

// Topics names the Kafka topics of the platform.
type Topics struct {
	Partitions  int      `yaml:"partitions" doc:"partitions per topic when lambdalog creates topics (broker, dev)"`
	Sources     []Source `yaml:"sources" doc:"raw log topics and the parser format of each"`
	Alerts      string   `yaml:"alerts" doc:"topic the speed layer publishes alerts to"`
	LateEvents  string   `yaml:"late_events" doc:"topic for events later than the allowed lateness"`
	Quarantine  string   `yaml:"quarantine" doc:"topic for lines that could not be parsed or were too long"`
	MaxLineSize int      `yaml:"max_line_size" doc:"longest accepted line in bytes; longer lines are quarantined"`
}

// Source is one raw log topic and the format of the lines on it.
type Source struct {
	Topic  string `yaml:"topic" doc:"topic name"`
	Format string `yaml:"format" doc:"sshd, syslog, access, netfilter, eve, json or auto"`
}

// Dataset locates the master dataset (Parquet files and commit state).
type Dataset struct {
	URL             string   `yaml:"url" doc:"file:///abs/path, hdfs://namenode:8020[,nn2:8020]/path, or a local path (made absolute)"`
	Timezone        string   `yaml:"timezone" doc:"timezone of the dt=/hour= partitions"`
	Compression     string   `yaml:"compression" doc:"Parquet compression: zstd, snappy or none"`
	RowGroupBytes   int64    `yaml:"row_group_bytes" doc:"target Parquet row group size in bytes"`
	RollBytes       int64    `yaml:"roll_bytes" doc:"roll a data file at this many buffered bytes"`
	RollRecords     int      `yaml:"roll_records" doc:"roll a data file at this many records"`
	RollInterval    Duration `yaml:"roll_interval" doc:"roll a data file at this age, so data becomes visible on slow topics"`
	IdleHeartbeat   Duration `yaml:"idle_heartbeat" doc:"a caught-up partition with no record for this long commits a heartbeat that advances its watermark to now - (realtime.max_out_of_order + realtime.allowed_lateness); 0 disables"`
	CheckpointEvery int      `yaml:"checkpoint_every" doc:"entries of a partition's commit log between checkpoints; a checkpoint folds the older entries and deletes them, bounding recovery reads; 0 disables"`
	MemoryBudgetMiB int      `yaml:"memory_budget_mib" doc:"memory the consumer's buffered records may hold across all open files, in MiB (estimated Arrow and Parquet buffers); past it the partitions holding the most commit early, before their roll; 0 disables"`
	HDFS            HDFS     `yaml:"hdfs"`
}

// HDFS configures the HDFS backend of the dataset.
type HDFS struct {
	User             string   `yaml:"user" doc:"HDFS user name (simple auth)"`
	KerberosKeytab   string   `yaml:"kerberos_keytab" doc:"keytab file; enables Kerberos"`
	KerberosCCache   string   `yaml:"kerberos_ccache" doc:"credential cache file; enables Kerberos"`
	KerberosConfig   string   `yaml:"kerberos_config" doc:"krb5.conf path"`
	KerberosSPN      string   `yaml:"kerberos_service_principal" doc:"NameNode service principal, e.g. nn/_HOST"`
	KerberosRealm    string   `yaml:"kerberos_realm" doc:"realm of the client principal"`
	KerberosUser     string   `yaml:"kerberos_principal" doc:"client principal (with a keytab)"`
	ConnectTimeout   Duration `yaml:"connect_timeout" doc:"timeout to connect to a NameNode or DataNode"`
	OperationTimeout Duration `yaml:"operation_timeout" doc:"read/write deadline of one HDFS operation"`
}

// ClickHouse locates the analysts' database.
type ClickHouse struct {
	DSN     Secret `yaml:"dsn" doc:"clickhouse://user:pass@host:9000/db (the password is masked when printed)"`
	Cluster string `yaml:"cluster" doc:"cluster (remote_servers) name: batch DDL runs ON CLUSTER, tables become *_local plus Distributed (docs/operations.md); empty for a single server"`
	// Replicated needs ZooKeeper on the servers; without it the cluster's
	// shards hold one copy each (MergeTree + Distributed).
	Replicated    bool   `yaml:"replicated" doc:"with cluster: ReplicatedMergeTree local tables (needs ZooKeeper and the {shard}/{replica} macros on every server)"`
	ZooKeeperPath string `yaml:"zookeeper_path" doc:"with replicated: ZooKeeper path of each local table; {database} and {table} are filled in by lambdalog, {shard} by the server's macros"`
}

// Consumer configures the exactly-once Kafka -> Parquet consumer.
type Consumer struct {
	Group string `yaml:"group" doc:"consumer group (for partition assignment and lag monitoring only)"`
	HTTP  string `yaml:"http" doc:"listen address of /metrics, /healthz and /readyz"`
	// A killed consumer's partitions move to the survivors after this.
	SessionTimeout Duration `yaml:"session_timeout" doc:"group session timeout: how soon a dead consumer's partitions are reassigned"`
	MemoryLimitMiB int      `yaml:"memory_limit_mib" doc:"soft memory limit of lambdalog consume in MiB: the Go GC collects harder as the heap nears it, so peak RSS stays near dataset.memory_budget_mib plus the runtime (a GOMEMLIMIT environment variable wins); 0: none"`
	GCPercent      int      `yaml:"gc_percent" doc:"GOGC of lambdalog consume: the heap grows this many percent over the live data before a collection; above Go's 100 it spends less CPU on the GC while memory_limit_mib caps the heap (a GOGC environment variable wins); 0: Go's default"`
	// A storage or broker outage longer than the commit retries fails the
	// consumer; restarting it in the process rides out a short one without
	// a container restart (and its growing back-off).
	RestartAttempts int `yaml:"restart_attempts" doc:"times lambdalog consume restarts its consumer in the process after it fails (storage or broker errors past the commit retries), waiting 1 s, 2 s, 4 s... between; the count starts again after 5 minutes without a failure; past it the command exits non-zero for its supervisor to restart; 0: exit on the first failure"`
}

// Realtime configures the speed layer.
type Realtime struct {
	Rules                 string   `yaml:"rules" doc:"YAML rules file; the shipped default rules when empty"`
	HTTP                  string   `yaml:"http" doc:"listen address of the alert stream, live views and metrics"`
	Group                 string   `yaml:"group" doc:"consumer group of the speed layer"`
	MaxOutOfOrder         Duration `yaml:"max_out_of_order" doc:"bounded out-of-orderness of the per-partition watermark"`
	AllowedLateness       Duration `yaml:"allowed_lateness" doc:"how late an event may be and still update its windows"`
	TransactionInterval   Duration `yaml:"transaction_interval" doc:"how often alerts and offsets are committed in one Kafka transaction"`
	MaxKeys               int      `yaml:"max_keys" doc:"cap on the keys each rule tracks (its window or sequence state); past it the least recently advanced key is evicted, so the state is at most rules x max_keys keys"`
	WebhookURL            string   `yaml:"webhook_url" doc:"POST every alert as JSON to this URL; empty disables"`
	WebhookToken          Secret   `yaml:"webhook_token" doc:"bearer token sent to the webhook"`
	WebhookQueue          int      `yaml:"webhook_queue" doc:"alerts waiting for webhook delivery; more go to the dead-letter file"`
	WebhookMaxAttempts    int      `yaml:"webhook_max_attempts" doc:"POSTs per alert (exponential backoff) before it is dead-lettered"`
	WebhookDeadLetter     string   `yaml:"webhook_dead_letter" doc:"file (JSON lines) of alerts the webhook could not take; empty: logged only"`
	SSEHistory            int      `yaml:"sse_history" doc:"recent alerts kept for Last-Event-ID resume of the alert stream"`
	SSEMaxClients         int      `yaml:"sse_max_clients" doc:"concurrent alert stream clients; more get 503"`
	MaxRulesBytes         int      `yaml:"max_rules_bytes" doc:"largest rules file accepted at start and on reload; a larger one is refused and the running rules stay"`
	HTTPToken             Secret   `yaml:"http_token" doc:"bearer token required on the speed layer's /api (alert stream, live views); open when empty; serve sends it"`
	HTTPTokenFile         string   `yaml:"http_token_file" doc:"file holding http_token"`
	HTTPPreviousToken     Secret   `yaml:"http_previous_token" doc:"the http_token before a rotation, accepted as well as http_token until every client sends the new one; needs http_token; empty outside a rotation"`
	HTTPPreviousTokenFile string   `yaml:"http_previous_token_file" doc:"file holding http_previous_token"`
	HTTPTLSCertFile       string   `yaml:"http_tls_cert_file" doc:"PEM certificate; serves realtime.http over HTTPS with http_tls_key_file"`
	HTTPTLSKeyFile        string   `yaml:"http_tls_key_file" doc:"PEM key for http_tls_cert_file"`
	HTTPRateLimit         int      `yaml:"http_rate_limit" doc:"requests per second per client IP on realtime.http (429 over it); 0 disables"`
	HTTPRateBurst         int      `yaml:"http_rate_burst" doc:"requests a client may make at once on realtime.http"`
	TransactionalID       string   `yaml:"transactional_id" doc:"Kafka transactional id and static group member id; unique per instance, stable across its restarts; lambdalog-realtime-HOSTNAME when empty"`
	SessionTimeout        Duration `yaml:"session_timeout" doc:"how soon a dead instance's partitions move to the others (a restarted one takes them back at once)"`
	AllowUncopartitioned  bool     `yaml:"allow_uncopartitioned" doc:"start even when a sequence rule's topics differ in partition count (correct with one instance only)"`
	Repartition           bool     `yaml:"repartition" doc:"feed rules not keyed by partition_key (distributed_bruteforce, traffic_spike) through internal repartition topics keyed by the rule's key, so they are exact with several instances; false: exact with one instance only"`
	RepartitionPrefix     string   `yaml:"repartition_topic_prefix" doc:"prefix of the repartition topics (prefix + key columns); group + \"-repartition-\" when empty; created at start with the largest source topic's partition count when missing"`
	PartitionKey          string   `yaml:"partition_key" doc:"the column the source topics are keyed by (producers key by source address); rules keyed by it read the source topics directly"`
	Minutes               bool     `yaml:"minutes" doc:"write the shared metrics' per-minute aggregates to ClickHouse (clickhouse.dsn, table rt_metric_minutes) for the merged series; false disables"`
	MinutesFlush          Duration `yaml:"minutes_flush_interval" doc:"how often changed per-minute aggregates are written to ClickHouse"`
	MinutesTolerance      Duration `yaml:"minutes_tolerance" doc:"event time the aggregates' writes may fall behind (ClickHouse down) and still be rebuilt by a restarted instance; lengthens the replay"`
	MinutesMaxEntries     int      `yaml:"minutes_max_entries" doc:"cap on per-minute aggregate state (cells plus distinct values); events beyond it are counted and dropped"`
	MemoryLimitMiB        int      `yaml:"memory_limit_mib" doc:"soft memory limit of lambdalog realtime in MiB: the Go GC collects harder as the heap nears it; about 3/4 of the container's memory limit, above the window state realtime.max_keys allows (a GOMEMLIMIT environment variable wins); 0: none"`
	GCPercent             int      `yaml:"gc_percent" doc:"GOGC of lambdalog realtime: the heap grows this many percent over the live data (mostly the window state) before a collection; above Go's 100 it spends less CPU on the GC while memory_limit_mib caps the heap (a GOGC environment variable wins); 0: Go's default"`
}

// Batch configures the scheduled batch jobs.
type Batch struct {
	Timezone        string     `yaml:"timezone" doc:"default timezone of the schedules"`
	Schedules       []Schedule `yaml:"schedules" doc:"jobs and their cron expressions"`
	Retries         int        `yaml:"retries" doc:"attempts after a failed run"`
	CatchUpHorizon  Duration   `yaml:"catch_up_horizon" doc:"how far back missed runs are caught up on start"`
	AllowedLateness Duration   `yaml:"allowed_lateness" doc:"wait this long past an interval's end before it counts as complete"`
	NotReady        string     `yaml:"not_ready" doc:"when the dataset is not complete for an interval: wait (poll until it is) or report (record not_ready, retry at the next fire)"`
	PollInterval    Duration   `yaml:"poll_interval" doc:"how often a waiting run re-checks the dataset watermark"`
	RetryBackoff    Duration   `yaml:"retry_backoff" doc:"wait before the first retry of a failed run; doubles per retry up to 10m"`
	Workers         int        `yaml:"workers" doc:"Parquet files read in parallel by a job; 0 uses every core"`
	HTTP            string     `yaml:"http" doc:"listen address of /metrics, /healthz and /readyz of batch schedule"`
	Compute         string     `yaml:"compute" doc:"where the reports job aggregates: go (Arrow over the Parquet files) or clickhouse (INSERT ... SELECT over the event tables, after load-events)"`
	LeaseTTL        Duration   `yaml:"lease_ttl" doc:"batch run --split: how long a worker's claim on a (job, interval) lasts without renewal; a dead worker's unit is taken over after this"`
	MemoryLimitMiB  int        `yaml:"memory_limit_mib" doc:"soft memory limit of batch processes in MiB: the Go GC collects harder as the heap nears it, so peak RSS stays near the live data (a GOMEMLIMIT environment variable wins); 0: none"`
	GCPercent       int        `yaml:"gc_percent" doc:"GOGC of batch processes: the heap grows this many percent over the live data before a collection; above Go's 100 it spends less CPU on the GC while memory_limit_mib caps the heap (a GOGC environment variable wins); 0: Go's default"`
	AggregationMiB  int        `yaml:"aggregation_memory_mib" doc:"memory budget of the reports job's aggregation state (group-by maps, exact distinct sets, and an eighth of it for the security summary's join by source IP) in MiB; past it the state is spilled to batch.spill_dir and merged bucket by bucket (slower, same results); below batch.memory_limit_mib"`
	SpillDir        string     `yaml:"spill_dir" doc:"absolute path of the directory for the reports job's spill files (removed when the job ends); empty: the system temp directory (TMPDIR)"`
}

// Schedule is one cron schedule of a batch job.
type Schedule struct {
	Job      string `yaml:"job" doc:"job name"`
	Cron     string `yaml:"cron" doc:"cron expression (5 fields, or 6 with seconds)"`
	Timezone string `yaml:"timezone" doc:"IANA timezone; batch.timezone when empty"`
}

// Serve configures the serving API and dashboard.
type Serve struct {
	Listen            string   `yaml:"listen" doc:"listen address of the API and dashboard"`
	Token             Secret   `yaml:"token" doc:"bearer token required on /api and the dashboard"`
	TokenFile         string   `yaml:"token_file" doc:"file holding the bearer token"`
	PreviousToken     Secret   `yaml:"previous_token" doc:"the token before a rotation, accepted as well as token until every client sends the new one; needs token; empty outside a rotation"`
	PreviousTokenFile string   `yaml:"previous_token_file" doc:"file holding previous_token"`
	InsecureNoAuth    bool     `yaml:"insecure_no_auth" doc:"serve without a token (development only)"`
	TLSCertFile       string   `yaml:"tls_cert_file" doc:"PEM certificate; enables HTTPS with tls_key_file"`
	TLSKeyFile        string   `yaml:"tls_key_file" doc:"PEM key for tls_cert_file"`
	RealtimeURL       string   `yaml:"realtime_url" doc:"base URL of the speed layer's HTTP API (alert stream, live windows) proxied to the dashboard; http:// + realtime.http when empty"`
	QueryTimeout      Duration `yaml:"query_timeout" doc:"longest a report or series query may run in ClickHouse"`
	MaxRows           int      `yaml:"max_rows" doc:"most rows a report returns; larger results are an error, not silently cut"`
	RateLimit         int      `yaml:"rate_limit" doc:"requests per second per client IP (429 over it); 0 disables; behind a proxy every client shares its IP"`
	RateBurst         int      `yaml:"rate_burst" doc:"requests a client may make at once"`
}

// Metrics secures the /metrics, /healthz and /readyz port of consume,
// batch schedule, broker and hdfs (realtime and serve have their own keys).
type Metrics struct {
	Token             Secret `yaml:"token" doc:"bearer token (or basic-auth password) required on /metrics; /healthz and /readyz stay open; open when empty"`
	TokenFile         string `yaml:"token_file" doc:"file holding the metrics token"`
	PreviousToken     Secret `yaml:"previous_token" doc:"the token before a rotation, accepted as well as token on /metrics until every scraper sends the new one; needs token; empty outside a rotation"`
	PreviousTokenFile string `yaml:"previous_token_file" doc:"file holding previous_token"`
	TLSCertFile       string `yaml:"tls_cert_file" doc:"PEM certificate; serves the metrics port over HTTPS with tls_key_file"`
	TLSKeyFile        string `yaml:"tls_key_file" doc:"PEM key for tls_cert_file"`
	RateLimit         int    `yaml:"rate_limit" doc:"requests per second per client IP (429 over it); 0 disables"`
	RateBurst         int    `yaml:"rate_burst" doc:"requests a client may make at once"`
}

// Log configures structured logging.
type Log struct {
	Format string `yaml:"format" doc:"text or json"`
	Level  string `yaml:"level" doc:"debug, info, warn or error"`
}

// Default returns the embedded defaults: everything on this machine.
func Default() *Config {
	return &Config{
		Kafka: Kafka{Brokers: []string{"127.0.0.1:9092"}, ClientID: "lambdalog"},
		Topics: Topics{
			Partitions: 6,
			Sources: []Source{
				{Topic: "auth", Format: "sshd"},
				{Topic: "firewall", Format: "netfilter"},
				{Topic: "ids", Format: "eve"},
				{Topic: "web", Format: "access"},
			},
			Alerts:      "alerts",
			LateEvents:  "late-events",
			Quarantine:  "quarantine",
			MaxLineSize: 64 << 10,
		},
		Dataset: Dataset{
			URL:             ".data/dataset",
			Timezone:        "UTC",
			Compression:     "zstd",
			RowGroupBytes:   128 << 20,
			RollBytes:       128 << 20,
			RollRecords:     5_000_000,
			RollInterval:    Duration(60 * time.Second),
			IdleHeartbeat:   Duration(time.Minute),
			CheckpointEvery: 1000,
			MemoryBudgetMiB: 256,
			HDFS: HDFS{
				ConnectTimeout:   Duration(10 * time.Second),
				OperationTimeout: Duration(60 * time.Second),
			},
		},
		ClickHouse: ClickHouse{DSN: "clickhouse://default:@127.0.0.1:9000/lambdalog", ZooKeeperPath: "/clickhouse/tables/{shard}/{database}/{table}"},
		Consumer:   Consumer{Group: "lambdalog-consume", HTTP: "127.0.0.1:9464", SessionTimeout: Duration(10 * time.Second), MemoryLimitMiB: 512, GCPercent: 200, RestartAttempts: 5},
		Realtime: Realtime{
			HTTP:                "127.0.0.1:9465",
			Group:               "lambdalog-realtime",
			MaxOutOfOrder:       Duration(5 * time.Second),
			AllowedLateness:     Duration(30 * time.Second),
			TransactionInterval: Duration(10 * time.Millisecond),
			MaxKeys:             2_000_000,
			WebhookQueue:        1024,
			WebhookMaxAttempts:  5,
			SSEHistory:          1000,
			SSEMaxClients:       64,
			MaxRulesBytes:       1 << 20,
			HTTPRateLimit:       50,
			HTTPRateBurst:       100,
			SessionTimeout:      Duration(10 * time.Second),
			Repartition:         true,
			PartitionKey:        "source_ip",
			Minutes:             true,
			MinutesFlush:        Duration(time.Second),
			MinutesTolerance:    Duration(5 * time.Minute),
			MinutesMaxEntries:   2_000_000,
			MemoryLimitMiB:      3072,
			GCPercent:           200,
		},
		Batch: Batch{
			Timezone: "UTC",
			Schedules: []Schedule{
				{Job: "load-events", Cron: "5 * * * *"},
				{Job: "reports", Cron: "15 0 * * *"},
			},
			Retries:         3,
			CatchUpHorizon:  Duration(72 * time.Hour),
			AllowedLateness: Duration(5 * time.Minute),
			NotReady:        "wait",
			PollInterval:    Duration(time.Minute),
			RetryBackoff:    Duration(30 * time.Second),
			HTTP:            "127.0.0.1:9466",
			Compute:         "go",
			LeaseTTL:        Duration(10 * time.Minute),
			MemoryLimitMiB:  768,
			GCPercent:       200,
			AggregationMiB:  384,
		},
		Serve:   Serve{Listen: "127.0.0.1:8080", QueryTimeout: Duration(30 * time.Second), MaxRows: 100_000, RateLimit: 20, RateBurst: 60},
		Metrics: Metrics{RateLimit: 10, RateBurst: 30},
		Log:     Log{Format: "text", Level: "info"},
	}
}

// Topic returns the configured source topic for a format-neutral name such as
// "auth", or "" when no source topic has that name.
func (t Topics) Topic(name string) string {
	for _, s := range t.Sources {
		if s.Topic == name {
			return s.Topic
		}
	}
	return ""
}

// All returns every topic the platform uses, sources first.
func (t Topics) All() []string {
	out := make([]string, 0, len(t.Sources)+3)
	for _, s := range t.Sources {
		out = append(out, s.Topic)
	}
	return append(out, t.Alerts, t.LateEvents, t.Quarantine)
}

// Secret is a string that is never printed: String, MarshalYAML and
// MarshalJSON all mask it. Reveal returns the value.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String masks the secret (URLs keep everything but their password).
func (s Secret) String() string { return maskSecret(string(s)) }

// MarshalYAML masks the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON masks the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprintf("%q", s.String())), nil }

// LogValue masks the secret in slog output.
func (s Secret) LogValue() string { return s.String() }

const mask = "*****"

func maskSecret(v string) string {
	if v == "" {
		return ""
	}
	if strings.Contains(v, "://") {
		if u, err := url.Parse(v); err == nil {
			if u.User != nil {
				if _, ok := u.User.Password(); ok {
					u.User = url.UserPassword(u.User.Username(), "xxxxx")
					return strings.Replace(u.String(), ":xxxxx@", ":"+mask+"@", 1)
				}
			}
			return u.String()
		}
	}
	return mask
}

// Duration is a time.Duration written as "10s", "5m", "1h30m" in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses "10s"-style durations.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration like 10s or 5m: %q", b)
	}
	*d = Duration(v)
	return nil
}
