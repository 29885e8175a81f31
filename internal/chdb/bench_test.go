package chdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chtest"
)

// BenchmarkBatchInsert measures a column-wise batch insert of event-like
// rows (DateTime, two Strings, integers, a Nullable and an Array) through
// the native protocol with LZ4: append plus send, per 100k-row batch.
func BenchmarkBatchInsert(b *testing.B) {
	srv := chtest.Shared(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db, err := Open(ctx, srv.DSN(chtest.NewDatabase(b, srv)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Exec(ctx, `CREATE TABLE ev (
		ts DateTime('UTC'), host String, src_ip String, port UInt16, bytes UInt64,
		user Nullable(String), tags Array(String)
	) ENGINE = MergeTree ORDER BY (host, ts)`); err != nil {
		b.Fatal(err)
	}
	const rows = 100_000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hosts := make([]string, 50)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("web-%02d.example.internal", i)
	}
	ips := make([]string, 1000)
	for i := range ips {
		ips[i] = fmt.Sprintf("203.0.%d.%d", i/250, i%250)
	}
	user, tags := "alice", []string{"auth", "ssh"}
	// Raw payload: fixed widths plus string bytes, for MB/s.
	var payload int64
	for i := 0; i < rows; i++ {
		payload += 4 + int64(len(hosts[i%50])+len(ips[i%1000])) + 2 + 8 + 1 + 8
		if i%4 == 0 {
			payload += int64(len(user)) + int64(len(tags[0])+len(tags[1]))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		batch, err := db.PrepareBatch(ctx, "INSERT INTO ev (ts, host, src_ip, port, bytes, user, tags)")
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < rows; i++ {
			var u *string
			tg := []string{}
			if i%4 == 0 {
				u, tg = &user, tags
			}
			if err := batch.Append(base.Add(time.Duration(i)*time.Second), hosts[i%50], ips[i%1000], uint16(i), uint64(i)*17, u, tg); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(rows*b.N)/sec, "rows/s")
	b.ReportMetric(float64(payload*int64(b.N))/sec/1e6, "MB/s")
	b.StopTimer()
	var got uint64
	if err := db.QueryRow(ctx, "SELECT count() FROM ev").Scan(&got); err != nil || got != uint64(rows*b.N) {
		b.Fatalf("table holds %d rows, want %d (%v)", got, rows*b.N, err)
	}
}
