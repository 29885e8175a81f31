package ingest

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

var benchFormats = []struct {
	name   string
	ds     gen.Dataset
	format string
}{
	{"sshd", gen.Auth, "sshd"},
	{"netfilter", gen.Firewall, "netfilter"},
	{"access", gen.Web, "access"},
	{"eve", gen.IDS, "eve"},
}

// writeGenFile writes n generated lines of ds to a file and returns its
// path and size.
func writeGenFile(b *testing.B, ds gen.Dataset, n int) (string, int64) {
	b.Helper()
	g, err := gen.New(gen.Options{Seed: 1, Rate: 1_000_000, MaxSkew: time.Second, LateFraction: 0.001})
	if err != nil {
		b.Fatal(err)
	}
	name := filepath.Join(b.TempDir(), "in.log")
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var l gen.Line
	var size int64
	for i := 0; i < n && g.Next(&l); {
		if l.Dataset != ds {
			continue
		}
		w.Write(l.Value)
		w.WriteByte('\n')
		size += int64(len(l.Value) + 1)
		i++
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return name, size
}

// BenchmarkIngestFile measures the whole `lambdalog ingest FILE` path: the
// file reader, key extraction (full parse), franz-go's idempotent producer
// (snappy, 5 ms linger) and every acknowledgement from an in-process kfake
// broker (6 partitions) on the same cores. One op is one line.
func BenchmarkIngestFile(b *testing.B) {
	for _, bf := range benchFormats {
		b.Run(bf.name, func(b *testing.B) {
			name, size := writeGenFile(b, bf.ds, b.N)
			br := kafkatest.Start(b, kafkatest.Options{Partitions: 6})
			g, err := New(newClient(b, br), Options{Topic: "auth", Format: bf.format, QuarantineTopic: "quarantine"})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			st, err := g.Run(context.Background(), []string{name})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if st.Acked != int64(b.N) || st.ParseErrorTotal() != 0 {
				b.Fatalf("stats %v, want %d lines acked and no parse errors", st, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			b.ReportMetric(float64(size)/1e6/b.Elapsed().Seconds(), "MB/s")
		})
	}
}

// BenchmarkKey measures key extraction alone (one goroutine): the full
// parse plus the source_ip read.
func BenchmarkKey(b *testing.B) {
	for _, bf := range benchFormats {
		b.Run(bf.name, func(b *testing.B) {
			name, _ := writeGenFile(b, bf.ds, 4096)
			data, err := os.ReadFile(name)
			if err != nil {
				b.Fatal(err)
			}
			sp := newSplitter(1<<16, 1, 0)
			var lines [][]byte
			sp.arena = append(sp.arena[:0], data...)
			for l, ok := sp.next(); ok; l, ok = sp.next() {
				lines = append(lines, l.value)
			}
			p, err := parse.New(bf.format, parse.Options{})
			if err != nil {
				b.Fatal(err)
			}
			k := newKeyer(p)
			var key []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				key, err = k.appendKey(key[:0], lines[i%len(lines)])
				if err != nil || len(key) == 0 {
					b.Fatalf("line %q: key %q, %v", lines[i%len(lines)], key, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkSplit measures the reader alone: lines/s and MB/s cutting a
// file into lines.
func BenchmarkSplit(b *testing.B) {
	name, size := writeGenFile(b, gen.Auth, 200_000)
	b.ReportAllocs()
	b.ResetTimer()
	lines := 0
	for i := 0; i < b.N; i++ {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		sp := newSplitter(1<<16, DefaultLongLineKeep, arenaSize)
		for {
			_, err := sp.readFrom(f)
			for _, ok := sp.next(); ok; _, ok = sp.next() {
				lines++
			}
			if err != nil {
				break
			}
		}
		f.Close()
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(size)*float64(b.N)/1e6/b.Elapsed().Seconds(), "MB/s")
}
