package gen

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/kafkatest"
)

// TestKafkaDeliversEveryLineOnce produces a run into an in-process broker
// and reads it all back: every line exactly once, on its dataset's topic,
// with its source IP as key, and every key in a single partition.
func TestKafkaDeliversEveryLineOnce(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	o := Options{Seed: 11, Rate: 100_000, Duration: 2 * time.Second, MaxSkew: time.Second, LateFraction: 0.01,
		Topics: [NumDatasets]string{"auth", "firewall", "ids", "web"}}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		topic, key string
		n          int
	}
	want := map[string]*rec{} // value -> topic, key, copies outstanding
	var l Line
	for g.Next(&l) {
		if w, ok := want[string(l.Value)]; ok {
			w.n++
			continue
		}
		want[string(l.Value)] = &rec{l.Topic, string(l.Key), 1}
	}

	prod := kafkatest.Client(t, b, ProducerOptions(kgo.SnappyCompression())...)
	sink := NewKafkaSink(prod)
	g, _ = New(o)
	truth, err := g.Run(ctx, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if sink.Produced() != truth.Events || truth.Events != 200_000 {
		t.Fatalf("acknowledged %d, generated %d, want 200000", sink.Produced(), truth.Events)
	}

	cons := kafkatest.Client(t, b, kgo.ConsumeTopics("auth", "firewall", "ids", "web"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	partOf := map[string]int32{} // topic/key -> partition
	parts := map[int32]bool{}
	got := 0
	for got < int(truth.Events) {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", got, truth.Events, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got++
			w, ok := want[string(r.Value)]
			if !ok || w.n == 0 {
				t.Fatalf("record not generated, or delivered twice: %s", r.Value)
			}
			w.n--
			if w.topic != r.Topic || w.key != string(r.Key) {
				t.Fatalf("record %q on %s key %s, want %s key %s", r.Value, r.Topic, r.Key, w.topic, w.key)
			}
			pk := r.Topic + "/" + string(r.Key)
			if p, ok := partOf[pk]; ok && p != r.Partition {
				t.Fatalf("key %s on partitions %d and %d", pk, p, r.Partition)
			}
			partOf[pk] = r.Partition
			parts[r.Partition] = true
		})
	}
	for v, w := range want {
		if w.n != 0 {
			t.Errorf("%d copies never delivered: %s", w.n, v)
		}
	}
	if len(parts) != 4 {
		t.Errorf("records used partitions %v, want all 4", parts)
	}
	// Nothing more than the run: a short poll finds no extra record.
	pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer pcancel()
	if n := cons.PollFetches(pctx).NumRecords(); n != 0 {
		t.Errorf("%d records beyond the %d generated", n, truth.Events)
	}
}
