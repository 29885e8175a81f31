package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lambdalog.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Loader{}.Load()
	if err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if !strings.HasPrefix(cfg.Dataset.URL, "file:///") || !strings.HasSuffix(cfg.Dataset.URL, "/.data/dataset") {
		t.Errorf("dataset URL not made absolute: %q", cfg.Dataset.URL)
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	p := writeFile(t, `
kafka:
  brokers: [file:1]
  client_id: from-file
topics:
  partitions: 3
realtime:
  allowed_lateness: 45s
`)
	cfg, err := Loader{
		File: p,
		Env:  []string{"LAMBDALOG_KAFKA_CLIENT_ID=from-env", "LAMBDALOG_TOPICS_PARTITIONS=4", "HOME=/x"},
		Sets: []Setting{{Key: "topics.partitions", Value: "5", Source: "flag --partitions"}},
	}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Kafka.Brokers; len(got) != 1 || got[0] != "file:1" {
		t.Errorf("brokers = %v, want the file's", got)
	}
	if cfg.Kafka.ClientID != "from-env" {
		t.Errorf("client_id = %q, want env to override file", cfg.Kafka.ClientID)
	}
	if cfg.Topics.Partitions != 5 {
		t.Errorf("partitions = %d, want flag to override env", cfg.Topics.Partitions)
	}
	if cfg.Realtime.AllowedLateness.D() != 45*time.Second {
		t.Errorf("allowed_lateness = %v", cfg.Realtime.AllowedLateness)
	}
	if cfg.Realtime.MaxOutOfOrder.D() != 5*time.Second {
		t.Errorf("unset keys must keep defaults, got %v", cfg.Realtime.MaxOutOfOrder)
	}
}

func TestCheckReportsEveryProblemWithKeyPath(t *testing.T) {
	p := writeFile(t, `
kafka:
  brokers: 127.0.0.1:9092
  sasl:
    mechanizm: PLAIN
topics:
  partitions: six
dataset:
  url: s3://bucket/x
batch:
  schedules:
    - job: reports
      cron: "61 * * * *"
`)
	_, err := Loader{File: p, Env: []string{"LAMBDALOG_KAFKA_BROKER=x:1"}}.Load()
	probs := Problems(err)
	want := map[string]string{
		"kafka.brokers":           "expected a list",
		"kafka.sasl.mechanizm":    "unknown key",
		"topics.partitions":       "expected an integer",
		"dataset.url":             "unsupported scheme",
		"batch.schedules[0].cron": "bad cron expression",
		"LAMBDALOG_KAFKA_BROKER":  "unknown environment variable",
	}
	got := map[string]Problem{}
	for _, p := range probs {
		got[p.Key] = p
	}
	for key, msg := range want {
		p, ok := got[key]
		if !ok {
			t.Errorf("no problem reported for %s; got %v", key, probs)
			continue
		}
		if !strings.Contains(p.Message, msg) {
			t.Errorf("%s: message %q does not say %q", key, p.Message, msg)
		}
		if p.Fix == "" {
			t.Errorf("%s: no fix given", key)
		}
	}
	if p := got["kafka.sasl.mechanizm"]; !strings.Contains(p.Fix, `"mechanism"`) {
		t.Errorf("unknown key fix should suggest mechanism: %q", p.Fix)
	}
	if p := got["topics.partitions"]; !strings.HasSuffix(p.Source, ":7") {
		t.Errorf("partitions problem should name line 7, got %q", p.Source)
	}
	if p := got["LAMBDALOG_KAFKA_BROKER"]; !strings.Contains(p.Fix, "LAMBDALOG_KAFKA_BROKERS") {
		t.Errorf("env typo fix should suggest LAMBDALOG_KAFKA_BROKERS: %q", p.Fix)
	}
}

func TestSecretsMaskedWhenPrinted(t *testing.T) {
	cfg, err := Loader{Env: []string{
		"LAMBDALOG_CLICKHOUSE_DSN=clickhouse://alice:s3cr3t@db:9000/lambdalog",
		"LAMBDALOG_SERVE_TOKEN=tok-abcdef",
		"LAMBDALOG_KAFKA_SASL_MECHANISM=PLAIN",
		"LAMBDALOG_KAFKA_SASL_USERNAME=bob",
		"LAMBDALOG_KAFKA_SASL_PASSWORD=hunter2",
	}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr3t", "tok-abcdef", "hunter2"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("printed config leaks %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(string(out), "clickhouse://alice:*****@db:9000/lambdalog") {
		t.Errorf("DSN should keep everything but the password:\n%s", out)
	}
	if cfg.ClickHouse.DSN.Reveal() != "clickhouse://alice:s3cr3t@db:9000/lambdalog" {
		t.Errorf("Reveal lost the secret")
	}
}

func TestSetListOfMappings(t *testing.T) {
	cfg := Default()
	if err := cfg.Set("topics.sources", "[{topic: ssh, format: sshd}, {topic: fw, format: netfilter}]"); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Topics.Sources) != 2 || cfg.Topics.Sources[1] != (Source{Topic: "fw", Format: "netfilter"}) {
		t.Errorf("sources = %+v", cfg.Topics.Sources)
	}
	if err := cfg.Set("kafka.nope", "1"); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(doc), "`"+k.Path+"`") {
			t.Errorf("docs/configuration.md does not document %s", k.Path)
		}
	}
}

// TestSecretsNeverLogged logs the whole configuration, each section and
// each secret on its own, with both handlers lambdalog uses; no secret
// value may come out, whichever key (file, environment) set it.
func TestSecretsNeverLogged(t *testing.T) {
	tokFile := writeFile(t, "metrics-tok-from-file\n")
	cfg, err := Loader{Env: []string{
		"LAMBDALOG_CLICKHOUSE_DSN=clickhouse://alice:s3cr3t@db:9000/lambdalog",
		"LAMBDALOG_SERVE_TOKEN=tok-abcdef",
		"LAMBDALOG_KAFKA_SASL_MECHANISM=PLAIN",
		"LAMBDALOG_KAFKA_SASL_USERNAME=bob",
		"LAMBDALOG_KAFKA_SASL_PASSWORD=hunter2",
		"LAMBDALOG_REALTIME_WEBHOOK_TOKEN=hook-tok-99",
		"LAMBDALOG_REALTIME_HTTP_TOKEN=rt-api-tok-31",
		"LAMBDALOG_METRICS_TOKEN_FILE=" + tokFile,
	}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := cfg.Metrics.BearerToken()
	if err != nil || mt != "metrics-tok-from-file" {
		t.Fatalf("metrics token from file = %q, %v", mt, err)
	}
	if rt, _ := cfg.Realtime.HTTPBearerToken(); rt != "rt-api-tok-31" {
		t.Fatalf("realtime token = %q", rt)
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("config", "cfg", cfg, "serve", cfg.Serve, "realtime", cfg.Realtime, "metrics", cfg.Metrics, "kafka", cfg.Kafka)
		log.Info("secrets", "dsn", cfg.ClickHouse.DSN, "tok", cfg.Serve.Token, "rt", cfg.Realtime.HTTPToken, "hook", cfg.Realtime.WebhookToken)
	}
	for _, secret := range []string{"s3cr3t", "tok-abcdef", "hunter2", "hook-tok-99", "rt-api-tok-31"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("logs leak %q:\n%s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), "*****") {
		t.Errorf("secrets should show as *****:\n%s", buf.String())
	}
}

func TestHTTPLimitKeysChecked(t *testing.T) {
	_, err := Loader{Env: []string{
		"LAMBDALOG_SERVE_RATE_LIMIT=-1",
		"LAMBDALOG_REALTIME_MAX_RULES_BYTES=0",
		"LAMBDALOG_REALTIME_GC_PERCENT=-5",
		"LAMBDALOG_REALTIME_MEMORY_LIMIT_MIB=-1",
		"LAMBDALOG_REALTIME_HTTP_TLS_CERT_FILE=" + writeFile(t, "x"),
		"LAMBDALOG_METRICS_TLS_KEY_FILE=/nonexistent/key.pem",
	}}.Load()
	got := map[string]string{}
	for _, p := range Problems(err) {
		got[p.Key] += p.Message + ";"
	}
	for key, msg := range map[string]string{
		"serve.rate_limit":            "must not be negative",
		"realtime.max_rules_bytes":    "greater than zero",
		"realtime.gc_percent":         "must not be negative",
		"realtime.memory_limit_mib":   "must not be negative",
		"realtime.http_tls_cert_file": "go together",
		"metrics.tls_cert_file":       "go together",
		"metrics.tls_key_file":        "cannot read",
	} {
		if !strings.Contains(got[key], msg) {
			t.Errorf("%s: problems %q, want %q (all: %v)", key, got[key], msg, got)
		}
	}
	d := Default()
	if d.Realtime.MaxRulesBytes != 1<<20 || d.Serve.RateLimit != 20 || d.Realtime.HTTPRateLimit != 50 || d.Metrics.RateLimit != 10 {
		t.Errorf("defaults changed: %+v %+v %+v", d.Realtime, d.Serve, d.Metrics)
	}
}

func TestBatchAggregationMemoryChecked(t *testing.T) {
	for _, c := range []struct {
		env      []string
		key, msg string
	}{
		{[]string{"LAMBDALOG_BATCH_AGGREGATION_MEMORY_MIB=0"}, "batch.aggregation_memory_mib", "at least 1 MiB"},
		{[]string{"LAMBDALOG_BATCH_AGGREGATION_MEMORY_MIB=1024"}, "batch.aggregation_memory_mib", "not below batch.memory_limit_mib (768 MiB)"},
		{[]string{"LAMBDALOG_BATCH_SPILL_DIR=tmp/spill"}, "batch.spill_dir", "not an absolute path"},
	} {
		_, err := Loader{Env: c.env}.Load()
		var found bool
		for _, p := range Problems(err) {
			if p.Key != c.key {
				continue
			}
			found = true
			if !strings.Contains(p.Message, c.msg) {
				t.Errorf("%v: %s: message %q, want %q", c.env, c.key, p.Message, c.msg)
			}
			if !strings.Contains(p.Fix, "set "+c.key) {
				t.Errorf("%v: %s: fix %q does not name the key", c.env, c.key, p.Fix)
			}
		}
		if !found {
			t.Errorf("%v: no problem for %s (all: %v)", c.env, c.key, Problems(err))
		}
	}
	// Without a memory limit any positive budget is fine; the defaults are.
	if _, err := (Loader{Env: []string{"LAMBDALOG_BATCH_MEMORY_LIMIT_MIB=0", "LAMBDALOG_BATCH_AGGREGATION_MEMORY_MIB=4096", "LAMBDALOG_BATCH_SPILL_DIR=/var/tmp"}}).Load(); err != nil {
		t.Errorf("valid batch memory keys refused: %v", err)
	}
	if d := Default(); d.Batch.AggregationMiB != 384 || d.Batch.SpillDir != "" {
		t.Errorf("defaults changed: %+v", d.Batch)
	}
}

// TestPreviousTokens: each previous token loads from YAML, the
// environment or its _file key, comes back from its getter, is masked in
// logs, and is refused without the current token, naming the key and the
// fix.
func TestPreviousTokens(t *testing.T) {
	p := writeFile(t, "serve:\n  token: serve-new\n  previous_token: serve-old-yaml\n")
	cfg, err := Loader{File: p, Env: []string{
		"LAMBDALOG_REALTIME_HTTP_TOKEN=rt-new",
		"LAMBDALOG_REALTIME_HTTP_PREVIOUS_TOKEN=rt-old-env",
		"LAMBDALOG_METRICS_TOKEN=m-new",
		"LAMBDALOG_METRICS_PREVIOUS_TOKEN_FILE=" + writeFile(t, "m-old-file\n"),
	}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (string, error){
		"serve-old-yaml": cfg.Serve.PreviousBearerToken,
		"rt-old-env":     cfg.Realtime.HTTPPreviousBearerToken,
		"m-old-file":     cfg.Metrics.PreviousBearerToken,
	} {
		if got, err := get(); err != nil || got != name {
			t.Errorf("previous token = %q, %v, want %q", got, err, name)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg)
	for _, secret := range []string{"serve-old-yaml", "rt-old-env"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("logs leak %q", secret)
		}
	}
	// The same file keys, with the serve key from the file too.
	cfg, err = Loader{Env: []string{
		"LAMBDALOG_SERVE_TOKEN=serve-new",
		"LAMBDALOG_SERVE_PREVIOUS_TOKEN_FILE=" + writeFile(t, "serve-old-file\n"),
		"LAMBDALOG_REALTIME_HTTP_TOKEN=rt-new",
		"LAMBDALOG_REALTIME_HTTP_PREVIOUS_TOKEN_FILE=" + writeFile(t, "rt-old-file"),
	}}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := cfg.Serve.PreviousBearerToken(); s != "serve-old-file" {
		t.Errorf("serve.previous_token_file: %q", s)
	}
	if r, _ := cfg.Realtime.HTTPPreviousBearerToken(); r != "rt-old-file" {
		t.Errorf("realtime.http_previous_token_file: %q", r)
	}
	// Equal to the current token is fine (a rotation's first roll).
	if _, err := (Loader{Env: []string{"LAMBDALOG_METRICS_TOKEN=same", "LAMBDALOG_METRICS_PREVIOUS_TOKEN=same"}}).Load(); err != nil {
		t.Errorf("previous token equal to the token refused: %v", err)
	}

	_, err = Loader{Env: []string{
		"LAMBDALOG_SERVE_PREVIOUS_TOKEN=serve-old",
		"LAMBDALOG_REALTIME_HTTP_PREVIOUS_TOKEN_FILE=" + writeFile(t, "rt-old"),
		"LAMBDALOG_METRICS_PREVIOUS_TOKEN=m-old",
		"LAMBDALOG_METRICS_PREVIOUS_TOKEN_FILE=/nonexistent/metrics-old",
	}}.Load()
	got := map[string]Problem{}
	for _, p := range Problems(err) {
		if strings.Contains(p.Message, "is empty") {
			got[p.Key] = p
		}
	}
	for key, cur := range map[string]string{
		"serve.previous_token":         "serve.token",
		"realtime.http_previous_token": "realtime.http_token",
		"metrics.previous_token":       "metrics.token",
	} {
		p, ok := got[key]
		if !ok {
			t.Errorf("no problem for %s without %s (all: %v)", key, cur, Problems(err))
			continue
		}
		if !strings.Contains(p.Message, cur) || !strings.Contains(p.Fix, "set "+cur) || !strings.Contains(p.Fix, "remove "+key) {
			t.Errorf("%s: %q, fix %q: want both keys named", key, p.Message, p.Fix)
		}
	}
	if !strings.Contains(fmt.Sprint(Problems(err)), "metrics.previous_token_file") {
		t.Errorf("a missing previous token file is not reported: %v", Problems(err))
	}
}
