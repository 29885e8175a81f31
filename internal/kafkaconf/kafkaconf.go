// Package kafkaconf turns the kafka section of the configuration into
// franz-go client options (seed brokers, TLS, SASL), so every layer connects
// the same way.
package kafkaconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/lambdalog/lambdalog/internal/config"
)

// ClientOptions returns the kgo options that connect to the configured cluster.
func ClientOptions(k config.Kafka) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	if k.ClientID != "" {
		opts = append(opts, kgo.ClientID(k.ClientID))
	}
	if k.TLS.Enabled {
		tc, err := TLSConfig(k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}).DialContext))
	}
	if k.SASL.Mechanism != "" {
		pass, err := k.SASL.SASLPassword()
		if err != nil {
			return nil, fmt.Errorf("kafkaconf: %w", err)
		}
		switch k.SASL.Mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: k.SASL.Username, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.SASL.Username, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, fmt.Errorf("kafkaconf: kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL.Mechanism)
		}
	}
	return opts, nil
}

// TLSConfig builds a client TLS configuration: a custom CA pool when ca_file
// is set (system roots otherwise) and a client certificate for mutual TLS.
func TLSConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as testing only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaconf: kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafkaconf: kafka.tls.ca_file %s: no PEM certificate found", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaconf: kafka.tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Check connects to the seed brokers with the configuration and asks them,
// one at a time and without retrying, for the cluster's metadata. It returns
// nil as soon as one answers; otherwise an error per broker that names the
// setting most likely at fault, so a service can refuse to start with a clear
// reason instead of retrying a wrong password in silence.
func Check(ctx context.Context, k config.Kafka) error {
	opts, err := ClientOptions(k)
	if err != nil {
		return err
	}
	var h failedRequestHook
	cl, err := kgo.NewClient(append(opts, kgo.WithHooks(&h))...)
	if err != nil {
		return fmt.Errorf("kafkaconf: client: %w", err)
	}
	defer cl.Close()
	var errs []error
	for i, b := range cl.SeedBrokers() {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{} // none: only brokers and the controller
		_, err := b.Request(ctx, req)
		if err == nil {
			return nil
		}
		addr := "seed broker"
		if i < len(k.Brokers) {
			addr = k.Brokers[i]
		}
		errs = append(errs, explain(err, k, addr, h.last()))
	}
	if len(errs) == 0 {
		return errors.New("kafkaconf: no seed brokers configured (kafka.brokers)")
	}
	return errors.Join(errs...)
}

// Explain wraps an error from a Kafka client built with ClientOptions with
// the configuration key or broker-side grant that most likely fixes it
// (authentication, authorization, TLS trust). Other errors are returned as
// they are.
func Explain(err error, k config.Kafka) error {
	return explain(err, k, "", -1)
}

func explain(err error, k config.Kafka, addr string, failedKey int16) error {
	if err == nil {
		return nil
	}
	at := ""
	if addr != "" {
		at = " at " + addr
	}
	principal := "User:" + k.SASL.Username
	if k.SASL.Mechanism == "" {
		principal = "the anonymous or certificate principal"
	}
	// The broker's TLS alerts reach us only as text (crypto/tls keeps
	// their type unexported).
	msg := err.Error()
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		certInval x509.CertificateInvalidError
	)
	saslStep := failedKey == kmsg.SASLAuthenticate.Int16() || failedKey == kmsg.SASLHandshake.Int16()
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed),
		k.SASL.Mechanism != "" && saslStep && isConnClosed(err):
		return fmt.Errorf("kafka%s refused the SASL %s login of %q: wrong username or password, or no %s credential for that user (kafka.sasl.username, kafka.sasl.password/password_file): %w",
			at, k.SASL.Mechanism, k.SASL.Username, k.SASL.Mechanism, err)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Errorf("kafka%s does not offer SASL %s (kafka.sasl.mechanism): %w", at, k.SASL.Mechanism, err)
	case errors.Is(err, kerr.IllegalSaslState) && k.SASL.Mechanism == "":
		return fmt.Errorf("kafka%s expects a SASL login (set kafka.sasl.mechanism, username, password_file): %w", at, err)
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return fmt.Errorf("kafka%s: %s has no ACL for this operation on the topic (grant it, e.g. kafka-acls.sh --add --allow-principal %s --operation Write|Read --topic T): %w", at, principal, principal, err)
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		return fmt.Errorf("kafka%s: %s has no READ ACL on the consumer group (kafka-acls.sh --add --allow-principal %s --operation Read --group G): %w", at, principal, principal, err)
	case errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return fmt.Errorf("kafka%s: %s has no WRITE ACL on the transactional id (kafka-acls.sh --add --allow-principal %s --operation Write --transactional-id ID): %w", at, principal, principal, err)
	case errors.Is(err, kerr.ClusterAuthorizationFailed):
		return fmt.Errorf("kafka%s: %s has no ACL for this cluster operation (idempotent writes need IdempotentWrite on the cluster): %w", at, principal, err)
	case strings.Contains(msg, "remote error: tls: certificate required"), strings.Contains(msg, "remote error: tls: bad certificate"):
		return fmt.Errorf("kafka%s requires a client certificate it trusts (kafka.tls.cert_file and key_file, signed by the broker's client CA): %w", at, err)
	case strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return fmt.Errorf("kafka%s does not trust the CA of the client certificate (kafka.tls.cert_file): %w", at, err)
	case strings.Contains(msg, "remote error: tls: protocol version not supported"):
		return fmt.Errorf("kafka%s and lambdalog share no TLS version (lambdalog needs TLS 1.2 or later): %w", at, err)
	case errors.As(err, &unknownCA):
		return fmt.Errorf("kafka%s presents a certificate from a CA that is not trusted (set kafka.tls.ca_file to that CA's PEM): %w", at, err)
	case errors.As(err, &hostname):
		return fmt.Errorf("kafka%s presents a certificate for another name (fix kafka.brokers or set kafka.tls.server_name): %w", at, err)
	case errors.As(err, &certInval):
		return fmt.Errorf("kafka%s presents an invalid certificate (expired or not for server use): %w", at, err)
	case errors.As(err, new(tls.RecordHeaderError)):
		return fmt.Errorf("kafka%s does not speak TLS on this port (kafka.tls.enabled, or the listener's port): %w", at, err)
	}
	return fmt.Errorf("kafka%s: %w", at, err)
}

// isConnClosed reports whether the broker hung up, which is how brokers
// (and kfake) answer some refused SASL logins.
func isConnClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// failedRequestHook remembers the key of the last request that failed on
// the wire, so Check can tell a refused SASL login from a dead broker.
type failedRequestHook struct {
	mu  sync.Mutex
	key int16
	set bool
}

// OnBrokerE2E implements kgo.HookBrokerE2E.
func (h *failedRequestHook) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if e.Err() == nil {
		return
	}
	h.mu.Lock()
	h.key, h.set = key, true
	h.mu.Unlock()
}

func (h *failedRequestHook) last() int16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.set {
		return -1
	}
	return h.key
}
