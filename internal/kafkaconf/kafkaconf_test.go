package kafkaconf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/config"
)

// startBroker starts a one-partition kfake cluster with the topics "auth"
// and "firewall" and the given security options.
func startBroker(t *testing.T, extra ...kfake.Opt) *broker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := broker.Start(ctx, broker.Options{Listen: "127.0.0.1:0", Topics: []string{"auth", "firewall"}, Partitions: 1, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// newClient builds a client from the configuration alone, as every layer
// does, plus short timeouts so refusals surface within the test.
func newClient(t *testing.T, k config.Kafka, extra ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts, err := ClientOptions(k)
	if err != nil {
		t.Fatalf("ClientOptions: %v", err)
	}
	opts = append(opts, kgo.RecordDeliveryTimeout(3*time.Second), kgo.RetryTimeout(3*time.Second))
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes one record and returns the delivery error.
func produce(t *testing.T, k config.Kafka, topic, value string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl := newClient(t, k)
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
}

// consume reads want records of topic in group and commits them, returning
// their values or the first error the client reports.
func consume(t *testing.T, k config.Kafka, topic, group string, want int) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl := newClient(t, k, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return got, fmt.Errorf("after %d records: %w", len(got), err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return got, ferr
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		if err := cl.CommitRecords(ctx, fs.Records()...); err != nil {
			return got, fmt.Errorf("commit: %w", err)
		}
	}
	return got, nil
}

// check runs Check with a deadline and returns its error, failing the test
// if the error shows a secret.
func check(t *testing.T, k config.Kafka) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := Check(ctx, k)
	if err != nil && k.SASL.Password != "" && strings.Contains(err.Error(), k.SASL.Password.Reveal()) {
		t.Fatalf("Check error shows the password: %v", err)
	}
	return err
}

// wantErr fails unless err's message contains every part.
func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one containing %q", what, parts)
	}
	t.Logf("%s: %v", what, err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: %v\nwant it to contain %q", what, err, p)
		}
	}
}

// roundTrip produces two records and consumes exactly those two back.
func roundTrip(t *testing.T, k config.Kafka) {
	t.Helper()
	for _, v := range []string{"Failed password for root from 203.0.113.7", "Accepted publickey for ops from 198.51.100.2"} {
		if err := produce(t, k, "auth", v); err != nil {
			t.Fatalf("produce %q: %v", v, err)
		}
	}
	got, err := consume(t, k, "auth", "lambdalog-consume", 2)
	if err != nil {
		t.Fatalf("consume: %v (got %q)", err, got)
	}
	want := []string{"Failed password for root from 203.0.113.7", "Accepted publickey for ops from 198.51.100.2"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("consumed %q, want %q", got, want)
	}
}

func TestTLSCustomCA(t *testing.T) {
	p := newPKI(t)
	b := startBroker(t, kfake.TLS(p.serverTLS(false)))
	k := config.Kafka{Brokers: []string{b.Addr()}, ClientID: "lambdalog-test", TLS: config.TLS{Enabled: true, CAFile: p.caFile}}
	if err := check(t, k); err != nil {
		t.Fatalf("Check: %v", err)
	}
	roundTrip(t, k)

	t.Run("system roots refuse the private CA", func(t *testing.T) {
		k := k
		k.TLS.CAFile = ""
		err := produce(t, k, "auth", "x")
		wantErr(t, "produce without ca_file", err, "certificate signed by unknown authority")
		wantErr(t, "Check without ca_file", check(t, k), "at "+b.Addr(), "not trusted (set kafka.tls.ca_file", "certificate signed by unknown authority")
	})
	t.Run("server_name must match the certificate", func(t *testing.T) {
		k := k
		k.TLS.ServerName = "other.test"
		wantErr(t, "produce with server_name other.test", produce(t, k, "auth", "x"), "other.test")
		wantErr(t, "Check with server_name other.test", check(t, k), "kafka.tls.server_name", "other.test")
	})
	t.Run("plaintext client on a TLS listener", func(t *testing.T) {
		k := k
		k.TLS = config.TLS{}
		if err := check(t, k); err == nil {
			t.Fatal("Check without TLS against a TLS listener succeeded")
		}
	})
	t.Run("server_name names a SAN that is not the dialled host", func(t *testing.T) {
		k := k
		k.TLS.ServerName = "kafka.test"
		if err := produce(t, k, "auth", "via SAN"); err != nil {
			t.Fatalf("produce with server_name kafka.test: %v", err)
		}
	})
}

func TestMutualTLSRequiresClientCertificate(t *testing.T) {
	p := newPKI(t)
	b := startBroker(t, kfake.TLS(p.serverTLS(true)))
	k := config.Kafka{Brokers: []string{b.Addr()}, TLS: config.TLS{Enabled: true, CAFile: p.caFile, CertFile: p.clientCertFile, KeyFile: p.clientKeyFile}}
	roundTrip(t, k)

	t.Run("no client certificate", func(t *testing.T) {
		k := k
		k.TLS.CertFile, k.TLS.KeyFile = "", ""
		wantErr(t, "produce without a client certificate", produce(t, k, "auth", "x"), "certificate required")
		wantErr(t, "Check without a client certificate", check(t, k), "requires a client certificate", "kafka.tls.cert_file", "certificate required")
	})
	t.Run("client certificate from another CA", func(t *testing.T) {
		other := newPKI(t)
		k := k
		k.TLS.CertFile, k.TLS.KeyFile = other.clientCertFile, other.clientKeyFile
		wantErr(t, "produce with a foreign client certificate", produce(t, k, "auth", "x"), "unknown certificate authority")
		wantErr(t, "Check with a foreign client certificate", check(t, k), "does not trust the CA of the client certificate")
	})
}

func TestSASLMechanisms(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			b := startBroker(t, kfake.EnableSASL(), kfake.Superuser(mech, "admin", "admin-secret"), kfake.User(mech, "lambdalog", "s3cret-"+mech))
			dir := t.TempDir()
			pwFile := filepath.Join(dir, "kafka-password")
			// A trailing newline, as `echo pw > file` writes, must not become part of the password.
			if err := os.WriteFile(pwFile, []byte("s3cret-"+mech+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			k := config.Kafka{Brokers: []string{b.Addr()}, SASL: config.SASL{Mechanism: mech, Username: "lambdalog", PasswordFile: pwFile}}
			roundTrip(t, k)

			if err := check(t, k); err != nil {
				t.Fatalf("Check: %v", err)
			}

			k.SASL.PasswordFile = ""
			k.SASL.Password = "hunter2-wrong"
			if err := produce(t, k, "auth", "x"); err == nil {
				t.Fatal("produce with a wrong password succeeded")
			}
			wantErr(t, "Check with a wrong password", check(t, k), "at "+b.Addr(), "refused the SASL "+mech+` login of "lambdalog"`, "wrong username or password")

			k.SASL.Password = config.Secret("s3cret-" + mech)
			k.SASL.Username = "nobody"
			wantErr(t, "Check with an unknown user", check(t, k), `login of "nobody"`)

			k.SASL = config.SASL{}
			wantErr(t, "Check without SASL", check(t, k), "at "+b.Addr(), "SASL")
		})
	}
}

func TestSASLOverMutualTLSFromConfigFile(t *testing.T) {
	p := newPKI(t)
	b := startBroker(t, kfake.TLS(p.serverTLS(true)), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-secret"), kfake.User("SCRAM-SHA-512", "lambdalog", "p@ss:word with spaces"))
	dir := t.TempDir()
	pw := writeFile(t, dir, "kafka-password", []byte("p@ss:word with spaces\n"))
	yaml := fmt.Sprintf(`kafka:
  brokers: [%q]
  tls:
    enabled: true
    ca_file: %s
    cert_file: %s
    key_file: %s
  sasl:
    mechanism: SCRAM-SHA-512
    username: lambdalog
    password_file: %s
`, b.Addr(), p.caFile, p.clientCertFile, p.clientKeyFile, pw)
	file := writeFile(t, dir, "lambdalog.yaml", []byte(yaml))
	cfg, err := config.Loader{File: file}.Load()
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, cfg.Kafka)
}

// allow is a literal ALLOW ACL for the user it is attached to.
func allow(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
	return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
}

func TestACLs(t *testing.T) {
	b := startBroker(t, kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "admin-secret"),
		kfake.User("SCRAM-SHA-512", "lambdalog", "s3cret",
			allow(kmsg.ACLResourceTypeTopic, "auth", kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeTopic, "auth", kmsg.ACLOperationRead),
			allow(kmsg.ACLResourceTypeTopic, "auth", kmsg.ACLOperationDescribe),
			allow(kmsg.ACLResourceTypeGroup, "lambdalog-consume", kmsg.ACLOperationRead),
		))
	k := config.Kafka{Brokers: []string{b.Addr()}, SASL: config.SASL{Mechanism: "SCRAM-SHA-512", Username: "lambdalog", Password: "s3cret"}}
	roundTrip(t, k)

	t.Run("no WRITE on the topic", func(t *testing.T) {
		err := produce(t, k, "firewall", "x")
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("produce to firewall: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		wantErr(t, "Explain", Explain(err, k), "User:lambdalog has no ACL", "--allow-principal User:lambdalog", "TOPIC_AUTHORIZATION_FAILED")
	})
	t.Run("no READ on the group", func(t *testing.T) {
		_, err := consume(t, k, "auth", "someone-elses-group", 1)
		if !errors.Is(err, kerr.GroupAuthorizationFailed) {
			t.Fatalf("consume in an unauthorized group: %v, want GROUP_AUTHORIZATION_FAILED", err)
		}
		wantErr(t, "Explain", Explain(err, k), "User:lambdalog has no READ ACL on the consumer group")
	})
}

func TestClientOptionsRefusesBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "ca.pem", []byte("not a certificate"))
	cases := []struct {
		name string
		k    config.Kafka
		want string
	}{
		{"unknown mechanism", config.Kafka{Brokers: []string{"k:9092"}, SASL: config.SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}}, `kafka.sasl.mechanism "GSSAPI"`},
		{"missing password file", config.Kafka{Brokers: []string{"k:9092"}, SASL: config.SASL{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(dir, "nope")}}, "kafka.sasl.password_file"},
		{"missing CA file", config.Kafka{Brokers: []string{"k:9092"}, TLS: config.TLS{Enabled: true, CAFile: filepath.Join(dir, "nope.pem")}}, "kafka.tls.ca_file"},
		{"CA file without PEM", config.Kafka{Brokers: []string{"k:9092"}, TLS: config.TLS{Enabled: true, CAFile: notPEM}}, "no PEM certificate found"},
		{"key file missing", config.Kafka{Brokers: []string{"k:9092"}, TLS: config.TLS{Enabled: true, CertFile: notPEM, KeyFile: filepath.Join(dir, "nope-key.pem")}}, "kafka.tls.cert_file/key_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ClientOptions(c.k)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ClientOptions: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// TestTLSConfigMinimumVersion pins what the TLS client offers: never below
// TLS 1.2, whatever the broker accepts.
func TestTLSConfigMinimumVersion(t *testing.T) {
	p := newPKI(t)
	old := p.serverTLS(false)
	old.MinVersion, old.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	b := startBroker(t, kfake.TLS(old))
	k := config.Kafka{Brokers: []string{b.Addr()}, TLS: config.TLS{Enabled: true, CAFile: p.caFile}}
	wantErr(t, "produce to a TLS 1.1 broker", produce(t, k, "auth", "x"), "protocol version")
	wantErr(t, "Check against a TLS 1.1 broker", check(t, k), "TLS 1.2 or later")
}

func TestCheckNamesEveryUnreachableBroker(t *testing.T) {
	// Two ports nothing listens on: bind, note the port, close.
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	err := check(t, config.Kafka{Brokers: addrs})
	wantErr(t, "Check with no broker up", err, "kafka at "+addrs[0], "kafka at "+addrs[1], "connection refused")
}
