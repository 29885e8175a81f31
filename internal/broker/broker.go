// Package broker runs an embedded, single-node Kafka-protocol cluster
// (franz-go's kfake) with the platform's topics created. It is for
// development and tests only: kfake is a faithful protocol implementation
// (transactions, groups, persistence) but not a replicated production broker.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options configure an embedded broker.
type Options struct {
	// Listen is the host:port to serve on; port 0 picks a free one.
	Listen string
	// Topics are created at start with Partitions partitions each.
	Topics     []string
	Partitions int
	// DataDir, when set, keeps the log on disk so topics, records and
	// committed offsets survive a restart.
	DataDir string
	Logger  *slog.Logger
	// Extra kfake options, e.g. TLS or SASL for security tests.
	Extra []kfake.Opt
}

// Broker is a running embedded cluster.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts the broker and returns once its port accepts connections and
// every topic exists.
func Start(ctx context.Context, o Options) (*Broker, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen address %q: %w", o.Listen, err)
	}
	// kfake listens on 127.0.0.1:port; ListenFn lets us honour the host of
	// --listen, and binding here first turns "address in use" into our error.
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen %s: %w", o.Listen, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	used := false
	listen := func(network, _ string) (net.Listener, error) {
		if !used {
			used = true
			return ln, nil
		}
		return net.Listen(network, net.JoinHostPort(host, "0"))
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(listen),
		kfake.SeedTopics(int32(o.Partitions), o.Topics...),
		kfake.ClusterID("lambdalog-embedded"),
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	if o.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogAdapter{o.Logger}))
	}
	opts = append(opts, o.Extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	b := &Broker{cluster: c, addr: c.ListenAddrs()[0]}
	if len(o.Extra) == 0 {
		if err := b.waitTopics(ctx, o.Topics); err != nil {
			c.Close()
			return nil, err
		}
	}
	return b, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.addr }

// Cluster exposes kfake's control hooks to tests (fault injection).
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker, flushing its data dir if it has one.
func (b *Broker) Close() { b.cluster.Close() }

func (b *Broker) waitTopics(ctx context.Context, topics []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return fmt.Errorf("broker: client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		md, err := adm.ListTopics(ctx, topics...)
		if err == nil {
			missing := 0
			for _, t := range topics {
				if d, ok := md[t]; !ok || d.Err != nil {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("broker: topics %v not ready: %w", topics, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	switch level {
	case kfake.LogLevelError:
		a.l.Error(text, "component", "kfake")
	case kfake.LogLevelWarn:
		a.l.Warn(text, "component", "kfake")
	case kfake.LogLevelInfo:
		a.l.Info(text, "component", "kfake")
	default:
		a.l.Debug(text, "component", "kfake")
	}
}
