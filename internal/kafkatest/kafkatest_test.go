package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRestartKeepsRecordsAndOffsets checks what `lambdalog broker --data`
// and the dev platform rely on: records and committed group offsets survive
// a restart on the same data dir.
func TestRestartKeepsRecordsAndOffsets(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	b := Start(t, Options{Topics: []string{"auth"}, Partitions: 1, DataDir: dir})
	cl := Client(t, b)
	for i := 0; i < 10; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auth", Value: []byte{byte('a' + i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	g := Client(t, b, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("auth"), kgo.DisableAutoCommit())
	read := 0
	for read < 4 {
		fs := g.PollRecords(ctx, 4-read)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		read += fs.NumRecords()
		if err := g.CommitRecords(ctx, fs.Records()...); err != nil {
			t.Fatal(err)
		}
	}
	g.Close()
	cl.Close()
	b.Close()

	b2 := Start(t, Options{Topics: []string{"auth"}, Partitions: 1, DataDir: dir})
	g2 := Client(t, b2, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("auth"))
	var got []byte
	for len(got) < 6 {
		fs := g2.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("after restart read %q: %v", got, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r.Value...) })
	}
	if string(got) != "efghij" {
		t.Errorf("after restart the group resumed with %q, want efghij", got)
	}
}
