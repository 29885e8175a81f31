package service

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
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
// source partition and of every partition of its repartition topics
// (group + "-repartition-*"), whose last entry is always the marker of a
// transaction: committing the offset before it is caught up.
func waitCaughtUp(t testing.TB, b *broker.Broker, group string, timeout time.Duration) {
	t.Helper()
	waitCaughtUpExcept(t, b, group, timeout)
}

// waitCaughtUpExcept is waitCaughtUp ignoring the repartition topics
// skip: topics a reload dropped from every instance, whose forwarded
// records no one consumes any more (docs/realtime.md, "Rules dropped").
func waitCaughtUpExcept(t testing.TB, b *broker.Broker, group string, timeout time.Duration, skip ...string) {
	t.Helper()
	// A short metadata age: the service creates its repartition topics
	// after this starts looking.
	adm := kadm.NewClient(kafkatest.Client(t, b, kgo.MetadataMinAge(10*time.Millisecond)))
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		topics := slices.Clone(sourceTopics)
		all, err0 := adm.ListTopics(ctx)
		for _, name := range all.Names() {
			if strings.HasPrefix(name, group+"-repartition-") && !slices.Contains(skip, name) {
				topics = append(topics, name)
			}
		}
		ends, err1 := adm.ListEndOffsets(ctx, topics...)
		committed, err2 := adm.FetchOffsets(ctx, group)
		cancel()
		if err0 == nil && err1 == nil && err2 == nil {
			behind := int64(0)
			var lag []string
			// Sources first: while they are behind, the repartition
			// topics are too, and looking for committed data there
			// (a new client per partition) would only load the machine
			// the benchmarks measure.
			sources := int64(0)
			ends.Each(func(o kadm.ListedOffset) {
				if c, _ := committed.Lookup(o.Topic, o.Partition); !strings.HasPrefix(o.Topic, group+"-repartition-") && o.Offset > max(c.At, 0) {
					sources += o.Offset - max(c.At, 0)
				}
			})
			ends.Each(func(o kadm.ListedOffset) {
				c, _ := committed.Lookup(o.Topic, o.Partition)
				end := o.Offset
				if strings.HasPrefix(o.Topic, group+"-repartition-") && end > max(c.At, 0) {
					if sources > 0 {
						behind += end - max(c.At, 0)
						lag = append(lag, fmt.Sprintf("%s/%d end %d committed %d (sources behind)", o.Topic, o.Partition, o.Offset, c.At))
						return
					}
					// A repartition partition's last entry is a
					// transaction's marker (every write is transactional,
					// and the source offsets of an open transaction are
					// not committed yet, so the sources are behind then).
					if end-1 == max(c.At, 0) || !committedData(t, b, o.Topic, o.Partition, max(c.At, 0), end) {
						return // only markers or aborted records left
					}
				}
				if end > 0 && end > c.At {
					behind += end - max(c.At, 0)
					lag = append(lag, fmt.Sprintf("%s/%d end %d committed %d", o.Topic, o.Partition, o.Offset, c.At))
				}
			})
			if behind == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("group %s still %d records behind after %v: %s", group, behind, timeout, strings.Join(lag, ", "))
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("offsets: %v %v", err1, err2)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// committedData reports whether topic/partition holds a committed record
// in [from, end): what is left after a group's committed offset in a
// repartition topic may be only transaction markers and aborted records,
// which a read_committed consumer never sees.
func committedData(t testing.TB, b *broker.Broker, topic string, partition int32, from, end int64) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer cl.Close()
	// Long enough for a new client to connect and fetch on a loaded
	// machine; only a tail of aborted records waits it out.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		found := false
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { found = found || r.Offset < end })
		if found {
			return true
		}
	}
	return false
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
