package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Formats are the parser formats a source topic may name.
var Formats = []string{"sshd", "syslog", "access", "netfilter", "eve", "json", "auto"}

// CronParser is the one cron dialect of lambdalog: five fields, or six with
// leading seconds, plus descriptors such as @hourly.
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// normalize turns relative dataset paths into absolute file URLs, so every
// process of one installation agrees on where the dataset is.
func (c *Config) normalize() {
	u := c.Dataset.URL
	if u == "" || strings.Contains(u, "://") {
		return
	}
	if abs, err := filepath.Abs(u); err == nil {
		c.Dataset.URL = "file://" + filepath.ToSlash(abs)
	}
}

// Validate checks the meaning of every key and returns all problems found.
func (c *Config) Validate() []Problem {
	var ps []Problem
	add := func(key, msg string) {
		ps = append(ps, Problem{Key: key, Message: msg, Fix: fixFor(key)})
	}

	if len(c.Kafka.Brokers) == 0 {
		add("kafka.brokers", "no brokers")
	}
	for i, b := range c.Kafka.Brokers {
		if err := checkHostPort(b); err != nil {
			add(fmt.Sprintf("kafka.brokers[%d]", i), err.Error())
		}
	}
	switch c.Kafka.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.Kafka.SASL.Username == "" {
			add("kafka.sasl.username", "SASL is on but no username is set")
		}
		if c.Kafka.SASL.Password == "" && c.Kafka.SASL.PasswordFile == "" {
			add("kafka.sasl.password", "SASL is on but neither password nor password_file is set")
		}
	default:
		add("kafka.sasl.mechanism", fmt.Sprintf("unknown mechanism %q", c.Kafka.SASL.Mechanism))
	}
	if (c.Kafka.TLS.CertFile == "") != (c.Kafka.TLS.KeyFile == "") {
		add("kafka.tls.cert_file", "cert_file and key_file go together")
	}
	ps = append(ps, checkFiles(map[string]string{
		"kafka.tls.ca_file":                 c.Kafka.TLS.CAFile,
		"kafka.tls.cert_file":               c.Kafka.TLS.CertFile,
		"kafka.tls.key_file":                c.Kafka.TLS.KeyFile,
		"kafka.sasl.password_file":          c.Kafka.SASL.PasswordFile,
		"serve.token_file":                  c.Serve.TokenFile,
		"serve.previous_token_file":         c.Serve.PreviousTokenFile,
		"serve.tls_cert_file":               c.Serve.TLSCertFile,
		"serve.tls_key_file":                c.Serve.TLSKeyFile,
		"dataset.hdfs.kerberos_keytab":      c.Dataset.HDFS.KerberosKeytab,
		"dataset.hdfs.kerberos_ccache":      c.Dataset.HDFS.KerberosCCache,
		"dataset.hdfs.kerberos_config":      c.Dataset.HDFS.KerberosConfig,
		"realtime.rules":                    c.Realtime.Rules,
		"realtime.http_token_file":          c.Realtime.HTTPTokenFile,
		"realtime.http_previous_token_file": c.Realtime.HTTPPreviousTokenFile,
		"realtime.http_tls_cert_file":       c.Realtime.HTTPTLSCertFile,
		"realtime.http_tls_key_file":        c.Realtime.HTTPTLSKeyFile,
		"metrics.token_file":                c.Metrics.TokenFile,
		"metrics.previous_token_file":       c.Metrics.PreviousTokenFile,
		"metrics.tls_cert_file":             c.Metrics.TLSCertFile,
		"metrics.tls_key_file":              c.Metrics.TLSKeyFile,
	})...)

	if c.Topics.Partitions < 1 {
		add("topics.partitions", "must be at least 1")
	}
	if len(c.Topics.Sources) == 0 {
		add("topics.sources", "no source topics")
	}
	seen := map[string]string{}
	for i, s := range c.Topics.Sources {
		key := fmt.Sprintf("topics.sources[%d]", i)
		if s.Topic == "" {
			add(key+".topic", "empty topic name")
		} else if prev, dup := seen[s.Topic]; dup {
			add(key+".topic", fmt.Sprintf("topic %q is also %s", s.Topic, prev))
		}
		seen[s.Topic] = key
		if !contains(Formats, s.Format) {
			add(key+".format", fmt.Sprintf("unknown format %q", s.Format))
		}
	}
	for key, name := range map[string]string{"topics.alerts": c.Topics.Alerts, "topics.late_events": c.Topics.LateEvents, "topics.quarantine": c.Topics.Quarantine} {
		if name == "" {
			add(key, "empty topic name")
		} else if prev, dup := seen[name]; dup {
			add(key, fmt.Sprintf("topic %q is also %s", name, prev))
		}
	}
	if c.Topics.MaxLineSize < 256 {
		add("topics.max_line_size", "must be at least 256 bytes")
	}

	if u, err := url.Parse(c.Dataset.URL); err != nil {
		add("dataset.url", err.Error())
	} else {
		switch u.Scheme {
		case "file":
			if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
				add("dataset.url", fmt.Sprintf("%q is not an absolute file URL", c.Dataset.URL))
			}
		case "hdfs":
			if u.Host == "" {
				add("dataset.url", "hdfs URL without a NameNode address")
			}
			for _, hp := range strings.Split(u.Host, ",") {
				if err := checkHostPort(hp); err != nil {
					add("dataset.url", err.Error())
				}
			}
		default:
			add("dataset.url", fmt.Sprintf("unsupported scheme %q", u.Scheme))
		}
	}
	if _, err := time.LoadLocation(c.Dataset.Timezone); err != nil {
		add("dataset.timezone", fmt.Sprintf("unknown timezone %q", c.Dataset.Timezone))
	}
	if !contains([]string{"zstd", "snappy", "none"}, c.Dataset.Compression) {
		add("dataset.compression", fmt.Sprintf("unknown compression %q", c.Dataset.Compression))
	}
	positive(&ps, "dataset.row_group_bytes", c.Dataset.RowGroupBytes)
	positive(&ps, "dataset.roll_bytes", c.Dataset.RollBytes)
	positive(&ps, "dataset.roll_records", int64(c.Dataset.RollRecords))
	positive(&ps, "dataset.roll_interval", int64(c.Dataset.RollInterval))
	nonNegative(&ps, "dataset.idle_heartbeat", int64(c.Dataset.IdleHeartbeat))
	nonNegative(&ps, "dataset.checkpoint_every", int64(c.Dataset.CheckpointEvery))
	nonNegative(&ps, "dataset.memory_budget_mib", int64(c.Dataset.MemoryBudgetMiB))
	nonNegative(&ps, "consumer.memory_limit_mib", int64(c.Consumer.MemoryLimitMiB))
	nonNegative(&ps, "consumer.gc_percent", int64(c.Consumer.GCPercent))
	nonNegative(&ps, "consumer.restart_attempts", int64(c.Consumer.RestartAttempts))
	positive(&ps, "dataset.hdfs.connect_timeout", int64(c.Dataset.HDFS.ConnectTimeout))
	positive(&ps, "dataset.hdfs.operation_timeout", int64(c.Dataset.HDFS.OperationTimeout))

	if u, err := url.Parse(c.ClickHouse.DSN.Reveal()); err != nil || !contains([]string{"clickhouse", "tcp", "http", "https"}, u.Scheme) || u.Host == "" {
		add("clickhouse.dsn", "not a clickhouse://user:pass@host:port/db URL")
	}

	for key, addr := range map[string]string{"consumer.http": c.Consumer.HTTP, "realtime.http": c.Realtime.HTTP, "serve.listen": c.Serve.Listen} {
		if err := checkHostPort(addr); err != nil {
			add(key, err.Error())
		}
	}
	positive(&ps, "consumer.session_timeout", int64(c.Consumer.SessionTimeout))
	if c.Consumer.Group == "" {
		add("consumer.group", "empty group")
	}
	if c.Realtime.Group == "" {
		add("realtime.group", "empty group")
	}
	nonNegative(&ps, "realtime.max_out_of_order", int64(c.Realtime.MaxOutOfOrder))
	nonNegative(&ps, "realtime.allowed_lateness", int64(c.Realtime.AllowedLateness))
	nonNegative(&ps, "batch.allowed_lateness", int64(c.Batch.AllowedLateness))
	positive(&ps, "realtime.transaction_interval", int64(c.Realtime.TransactionInterval))
	positive(&ps, "realtime.max_keys", int64(c.Realtime.MaxKeys))
	positive(&ps, "realtime.webhook_queue", int64(c.Realtime.WebhookQueue))
	positive(&ps, "realtime.webhook_max_attempts", int64(c.Realtime.WebhookMaxAttempts))
	positive(&ps, "realtime.sse_history", int64(c.Realtime.SSEHistory))
	positive(&ps, "realtime.sse_max_clients", int64(c.Realtime.SSEMaxClients))
	positive(&ps, "realtime.session_timeout", int64(c.Realtime.SessionTimeout))
	positive(&ps, "realtime.minutes_flush_interval", int64(c.Realtime.MinutesFlush))
	positive(&ps, "realtime.minutes_tolerance", int64(c.Realtime.MinutesTolerance))
	positive(&ps, "realtime.minutes_max_entries", int64(c.Realtime.MinutesMaxEntries))
	positive(&ps, "realtime.max_rules_bytes", int64(c.Realtime.MaxRulesBytes))
	nonNegative(&ps, "realtime.memory_limit_mib", int64(c.Realtime.MemoryLimitMiB))
	nonNegative(&ps, "realtime.gc_percent", int64(c.Realtime.GCPercent))
	for key, v := range map[string]int{"realtime.http_rate_limit": c.Realtime.HTTPRateLimit, "realtime.http_rate_burst": c.Realtime.HTTPRateBurst,
		"serve.rate_limit": c.Serve.RateLimit, "serve.rate_burst": c.Serve.RateBurst, "metrics.rate_limit": c.Metrics.RateLimit, "metrics.rate_burst": c.Metrics.RateBurst} {
		nonNegative(&ps, key, int64(v))
	}
	for key, pair := range map[string][2]string{"realtime.http_tls_cert_file": {c.Realtime.HTTPTLSCertFile, c.Realtime.HTTPTLSKeyFile},
		"metrics.tls_cert_file": {c.Metrics.TLSCertFile, c.Metrics.TLSKeyFile}} {
		if (pair[0] == "") != (pair[1] == "") {
			add(key, "the certificate and key files go together")
		}
	}
	if c.Realtime.WebhookURL != "" {
		if u, err := url.Parse(c.Realtime.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("realtime.webhook_url", "not an http(s) URL")
		}
	}

	if _, err := time.LoadLocation(c.Batch.Timezone); err != nil {
		add("batch.timezone", fmt.Sprintf("unknown timezone %q", c.Batch.Timezone))
	}
	for i, s := range c.Batch.Schedules {
		key := fmt.Sprintf("batch.schedules[%d]", i)
		if s.Job == "" {
			add(key+".job", "empty job name")
		}
		if _, err := CronParser.Parse(s.Cron); err != nil {
			add(key+".cron", fmt.Sprintf("bad cron expression %q: %v", s.Cron, err))
		}
		if s.Timezone != "" {
			if _, err := time.LoadLocation(s.Timezone); err != nil {
				add(key+".timezone", fmt.Sprintf("unknown timezone %q", s.Timezone))
			}
		}
	}
	if c.Batch.Retries < 0 {
		add("batch.retries", "must not be negative")
	}
	if !contains([]string{"go", "clickhouse"}, c.Batch.Compute) {
		add("batch.compute", fmt.Sprintf("unknown compute mode %q: want go or clickhouse", c.Batch.Compute))
	}
	positive(&ps, "batch.lease_ttl", int64(c.Batch.LeaseTTL))
	nonNegative(&ps, "batch.memory_limit_mib", int64(c.Batch.MemoryLimitMiB))
	nonNegative(&ps, "batch.gc_percent", int64(c.Batch.GCPercent))
	switch b := c.Batch; {
	case b.AggregationMiB < 1:
		add("batch.aggregation_memory_mib", fmt.Sprintf("%d: must be at least 1 MiB (the reports always keep their aggregation within a budget)", b.AggregationMiB))
	case b.MemoryLimitMiB > 0 && b.AggregationMiB >= b.MemoryLimitMiB:
		add("batch.aggregation_memory_mib", fmt.Sprintf("%d MiB is not below batch.memory_limit_mib (%d MiB): lower it, or raise batch.memory_limit_mib above it plus the scan and the report rows (docs/batch.md, Memory)",
			b.AggregationMiB, b.MemoryLimitMiB))
	}
	if d := c.Batch.SpillDir; d != "" && !filepath.IsAbs(d) {
		add("batch.spill_dir", fmt.Sprintf("%q is not an absolute path", d))
	}
	if c.ClickHouse.Replicated && c.ClickHouse.Cluster == "" {
		add("clickhouse.replicated", "needs clickhouse.cluster")
	}
	if c.ClickHouse.Replicated && !strings.Contains(c.ClickHouse.ZooKeeperPath, "{table}") {
		add("clickhouse.zookeeper_path", "must contain {table}, or every table would share one ZooKeeper path")
	}
	if (c.Serve.TLSCertFile == "") != (c.Serve.TLSKeyFile == "") {
		add("serve.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	// A previous token alone would leave the port open (serve would not
	// start) while its operator believes it guarded.
	set := func(v Secret, file string) bool { return v != "" || file != "" }
	for _, t := range []struct {
		prev, cur         string
		hasPrev, hasToken bool
	}{
		{"serve.previous_token", "serve.token", set(c.Serve.PreviousToken, c.Serve.PreviousTokenFile), set(c.Serve.Token, c.Serve.TokenFile)},
		{"realtime.http_previous_token", "realtime.http_token", set(c.Realtime.HTTPPreviousToken, c.Realtime.HTTPPreviousTokenFile), set(c.Realtime.HTTPToken, c.Realtime.HTTPTokenFile)},
		{"metrics.previous_token", "metrics.token", set(c.Metrics.PreviousToken, c.Metrics.PreviousTokenFile), set(c.Metrics.Token, c.Metrics.TokenFile)},
	} {
		if t.hasPrev && !t.hasToken {
			ps = append(ps, Problem{Key: t.prev, Message: "set while " + t.cur + " is empty: a previous token is accepted only beside the current one",
				Fix: "set " + t.cur + " (or " + t.cur + "_file) to the new token, or remove " + t.prev + " and " + t.prev + "_file"})
		}
	}
	if !contains([]string{"text", "json"}, c.Log.Format) {
		add("log.format", fmt.Sprintf("unknown format %q", c.Log.Format))
	}
	if !contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		add("log.level", fmt.Sprintf("unknown level %q", c.Log.Level))
	}
	return ps
}

// fixFor says how to fix a bad value of a key, from its documentation.
func fixFor(key string) string {
	base := key
	if i := strings.IndexByte(base, '['); i >= 0 {
		rest := base[i:]
		base = base[:i]
		if j := strings.IndexByte(rest, ']'); j >= 0 {
			base += rest[j+1:]
		}
	}
	for _, k := range Keys() {
		if k.Path == base || strings.HasPrefix(base, k.Path+".") {
			return fmt.Sprintf("set %s to a %s: %s (default %s)", k.Path, k.Type, k.Doc, k.Default)
		}
	}
	return "see docs/configuration.md"
}

func positive(ps *[]Problem, key string, v int64) {
	if v <= 0 {
		*ps = append(*ps, Problem{Key: key, Message: "must be greater than zero", Fix: fixFor(key)})
	}
}

func nonNegative(ps *[]Problem, key string, v int64) {
	if v < 0 {
		*ps = append(*ps, Problem{Key: key, Message: "must not be negative", Fix: fixFor(key)})
	}
}

func checkFiles(files map[string]string) []Problem {
	var ps []Problem
	for key, path := range files {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			ps = append(ps, Problem{Key: key, Message: fmt.Sprintf("cannot read %s: %v", path, err), Fix: "point " + key + " at an existing, readable file"})
		}
	}
	return ps
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q has no valid port", s)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SASLPassword returns the SASL password from the password or password_file key.
func (s SASL) SASLPassword() (string, error) {
	return secretValue(s.Password, s.PasswordFile, "kafka.sasl.password_file")
}

// BearerToken returns the serving token from token or token_file.
func (s Serve) BearerToken() (string, error) {
	return secretValue(s.Token, s.TokenFile, "serve.token_file")
}

// HTTPBearerToken returns the speed layer's API token from http_token or
// http_token_file ("" when its API is open).
func (r Realtime) HTTPBearerToken() (string, error) {
	return secretValue(r.HTTPToken, r.HTTPTokenFile, "realtime.http_token_file")
}

// BearerToken returns the metrics token from token or token_file.
func (m Metrics) BearerToken() (string, error) {
	return secretValue(m.Token, m.TokenFile, "metrics.token_file")
}

// PreviousBearerToken returns the serving token being rotated out, from
// previous_token or previous_token_file ("" outside a rotation).
func (s Serve) PreviousBearerToken() (string, error) {
	return secretValue(s.PreviousToken, s.PreviousTokenFile, "serve.previous_token_file")
}

// HTTPPreviousBearerToken returns the speed layer's API token being
// rotated out, from http_previous_token or http_previous_token_file.
func (r Realtime) HTTPPreviousBearerToken() (string, error) {
	return secretValue(r.HTTPPreviousToken, r.HTTPPreviousTokenFile, "realtime.http_previous_token_file")
}

// PreviousBearerToken returns the metrics token being rotated out, from
// previous_token or previous_token_file.
func (m Metrics) PreviousBearerToken() (string, error) {
	return secretValue(m.PreviousToken, m.PreviousTokenFile, "metrics.previous_token_file")
}

func secretValue(v Secret, file, key string) (string, error) {
	if v != "" {
		return v.Reveal(), nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}
