package ingest

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// genLine is one generated raw line and the key it must get, worked out
// independently of the ingester: the generator's source IP when the line
// shows it, otherwise the syslog host (RFC 5424 field 3) for auth lines.
type genLine struct {
	value, key string
}

// genLines returns n distinct generated lines of dataset ds (all datasets
// when ds < 0), from seed.
func genLines(t testing.TB, seed uint64, ds int, n int) []genLine {
	t.Helper()
	g, err := gen.New(gen.Options{Seed: seed, Rate: 20000, MaxSkew: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []genLine
	var l gen.Line
	for len(out) < n && g.Next(&l) {
		if ds >= 0 && int(l.Dataset) != ds {
			continue
		}
		v := string(l.Value)
		if seen[v] {
			continue
		}
		seen[v] = true
		key := string(l.Key)
		if !strings.Contains(v, key) {
			if l.Dataset != gen.Auth {
				t.Fatalf("%s line without its source IP %s: %s", l.Dataset, key, v)
			}
			f := strings.Fields(v)
			key = f[2]
		}
		out = append(out, genLine{value: v, key: key})
	}
	return out
}

func joinLines(ls []genLine) []byte {
	var b bytes.Buffer
	for _, l := range ls {
		b.WriteString(l.value)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func appendFile(t testing.TB, name string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// newClient returns a producer client for the ingester.
func newClient(t testing.TB, b *broker.Broker) *kgo.Client {
	t.Helper()
	opts, err := ProducerOptions(ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return kafkatest.Client(t, b, opts...)
}

// topicCount is the exact number of records on topic (sum of end offsets).
func topicCount(t testing.TB, b *broker.Broker, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, b))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		n += o.Offset
	})
	return n
}

// consumer reads a topic from the start, keeping every record.
type consumer struct {
	t    testing.TB
	cl   *kgo.Client
	mu   sync.Mutex
	recs []*kgo.Record
}

func newConsumer(t testing.TB, b *broker.Broker, topic string) *consumer {
	return &consumer{t: t, cl: kafkatest.Client(t, b, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))}
}

// until polls until at least n records were read in total.
func (c *consumer) until(n int, timeout time.Duration) []*kgo.Record {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(c.recs) < n {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("consumed %d records, want %d: %v", len(c.recs), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { c.t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { c.recs = append(c.recs, r) })
	}
	return c.recs
}

// checkDelivered checks that records hold every line of want exactly
// once, each with its key, and that within each partition the lines are
// in input order.
func checkDelivered(t testing.TB, recs []*kgo.Record, want []genLine) {
	t.Helper()
	idx := make(map[string]int, len(want))
	for i, l := range want {
		idx[l.value] = i
	}
	seen := make([]int, len(want))
	last := map[int32]int{}
	bad := 0
	for _, r := range recs {
		i, ok := idx[string(r.Value)]
		if !ok {
			t.Errorf("unexpected record %q", r.Value)
			continue
		}
		seen[i]++
		if got := string(r.Key); got != want[i].key && bad < 5 {
			bad++
			t.Errorf("line %d key %q, want %q: %s", i, got, want[i].key, r.Value)
		}
		if p, ok := last[r.Partition]; ok && i < p {
			t.Errorf("partition %d: line %d after line %d", r.Partition, i, p)
		}
		last[r.Partition] = i
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("line %d delivered %d times: %s", i, n, want[i].value)
			if bad++; bad > 10 {
				return
			}
		}
	}
}
