package service

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

// testSources are the platform's default topics and formats.
var testSources = []Source{{"auth", "sshd"}, {"firewall", "netfilter"}, {"ids", "eve"}, {"web", "access"}}

var sourceTopics = []string{"auth", "firewall", "ids", "web"}

// testOptions is a service on b with the default rules.
func testOptions(t testing.TB, b *broker.Broker, group, alerts string) Options {
	t.Helper()
	rs, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: group, AlertsTopic: alerts, LateTopic: "late-events",
		Sources: testSources, Rules: rs, TransactionalID: "test-" + group, Logger: testLogger(t, slog.LevelWarn)}
}

// genLines generates traffic into memory.
func genLines(t testing.TB, o gen.Options) ([]kgo.Record, *gen.Truth) {
	t.Helper()
	g, err := gen.New(o)
	if err != nil {
		t.Fatal(err)
	}
	var recs []kgo.Record
	truth, err := g.Run(context.Background(), gen.SinkFunc(func(_ context.Context, l *gen.Line) error {
		recs = append(recs, kgo.Record{Topic: l.Topic, Key: append([]byte(nil), l.Key...), Value: append([]byte(nil), l.Value...)})
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return recs, truth
}

// produce writes recs and waits for every acknowledgement.
func produce(t testing.TB, cl *kgo.Client, recs []kgo.Record) {
	t.Helper()
	ptrs := make([]*kgo.Record, len(recs))
	for i := range recs {
		r := recs[i]
		r.Timestamp = time.Now()
		ptrs[i] = &r
	}
	if err := cl.ProduceSync(context.Background(), ptrs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// waitCaughtUp waits until group has committed the end offset of every
// source partition.
func waitCaughtUp(t testing.TB, b *broker.Broker, group string, timeout time.Duration) {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, b))
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ends, err1 := adm.ListEndOffsets(ctx, sourceTopics...)
		committed, err2 := adm.FetchOffsets(ctx, group)
		cancel()
		if err1 == nil && err2 == nil {
			behind := int64(0)
			ends.Each(func(o kadm.ListedOffset) {
				c, _ := committed.Lookup(o.Topic, o.Partition)
				if o.Offset > 0 {
					behind += o.Offset - max(c.At, 0)
				}
			})
			if behind == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s still %d records behind after %v", group, behind, timeout)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("offsets: %v %v", err1, err2)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readAlerts reads topic (read committed) to its end and returns every
// alert, in topic order per partition.
func readAlerts(t testing.TB, b *broker.Broker, topic string) []alert.Alert {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl := kafkatest.Client(t, b, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	var out []alert.Alert
	empty := 0
	for len(want) > 0 && empty < 3 {
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		pcancel()
		if fs.NumRecords() == 0 {
			empty++
		}
		fs.EachRecord(func(r *kgo.Record) {
			empty = 0
			var a alert.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				t.Errorf("alert JSON: %v", err)
			}
			out = append(out, a)
			if r.Offset >= want[r.Partition]-2 {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// byID indexes alerts by id, failing on a duplicate id.
func byID(t testing.TB, as []alert.Alert) map[string]alert.Alert {
	t.Helper()
	m := map[string]alert.Alert{}
	for _, a := range as {
		if _, dup := m[a.ID]; dup {
			t.Errorf("alert %s (%s %v) published twice", a.ID, a.RuleID, a.KeyValues)
		}
		m[a.ID] = a
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
