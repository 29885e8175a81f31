package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// TestFileToKafka ships a generated sshd file and reads it back: every line
// exactly once, keyed by source IP (host for lines without one), in input
// order within each partition.
func TestFileToKafka(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 3})
	lines := genLines(t, 1, int(gen.Auth), 20000)
	name := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(name, joinLines(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := New(newClient(t, b), Options{Topic: "auth", Format: "sshd", QuarantineTopic: "quarantine", BatchRecords: 500})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(context.Background(), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 20000 || st.Acked != 20000 || st.Produced != 20000 || st.ParseErrorTotal() != 0 || st.Quarantined != 0 {
		t.Errorf("stats: %v", st)
	}
	if fi, _ := os.Stat(name); st.Bytes != fi.Size() {
		t.Errorf("read %d bytes of %d", st.Bytes, fi.Size())
	}
	recs := newConsumer(t, b, "auth").until(20000, 30*time.Second)
	checkDelivered(t, recs, lines)
	if n := topicCount(t, b, "auth"); n != 20000 {
		t.Errorf("auth holds %d records, want 20000", n)
	}
	parts := map[int32]bool{}
	for _, r := range recs {
		parts[r.Partition] = true
	}
	if len(parts) != 3 {
		t.Errorf("records in %d partitions, want all 3", len(parts))
	}
}

// TestAutoMixedAndStdin reads all four generated formats interleaved from
// stdin with --format auto: every line is keyed by its own source IP.
func TestAutoMixedAndStdin(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 2})
	lines := genLines(t, 7, -1, 5000)
	formats := map[string]int{}
	for _, l := range lines {
		formats[parse.Detect([]byte(l.value))]++
	}
	if len(formats) < 4 {
		t.Fatalf("generated input covers formats %v, want 4", formats)
	}
	g, err := New(newClient(t, b), Options{Topic: "auth", Format: "auto", QuarantineTopic: "quarantine", Stdin: bytes.NewReader(joinLines(lines))})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 5000 || st.ParseErrorTotal() != 0 {
		t.Errorf("stats: %v", st)
	}
	checkDelivered(t, newConsumer(t, b, "auth").until(5000, 30*time.Second), lines)
}

// TestLongLinesAndGarbage mixes normal lines with over-long lines (one that
// fits the keep limit, one far past it), binary garbage and invalid UTF-8.
func TestLongLinesAndGarbage(t *testing.T) {
	b := kafkatest.Start(t, kafkatest.Options{Partitions: 2})
	good := genLines(t, 3, int(gen.Auth), 3)
	long1 := "<38>1 2026-01-01T00:00:00Z h sshd 1 - - " + strings.Repeat("A", 100<<10)
	long2 := strings.Repeat("0123456789", 300<<10) // 3 MB
	garbage := "\x00\x01\xff\xfe\x80binary\x00garbage"
	badUTF8 := "<38>1 2026-01-01T00:00:00Z h sshd 1 - - Failed password for \xc3\x28 from 1.2.3.4 port 22 ssh2"
	input := good[0].value + "\n" + long1 + "\r\n" + good[1].value + "\n" + garbage + "\n" + long2 + "\n" + badUTF8 + "\n" + good[2].value
	name := filepath.Join(t.TempDir(), "mixed.log")
	if err := os.WriteFile(name, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := New(newClient(t, b), Options{Topic: "auth", Format: "sshd", QuarantineTopic: "quarantine", MaxLineSize: 64 << 10, LongLineKeep: 512 << 10})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(context.Background(), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	if st.Lines != 7 || st.Quarantined != 2 || st.Acked != 7 || st.ParseErrors[parse.ReasonInvalidUTF8] != 2 || st.ParseErrorTotal() != 2 {
		t.Errorf("stats: %v", st)
	}

	recs := newConsumer(t, b, "auth").until(5, 30*time.Second)
	got := map[string]string{}
	for _, r := range recs {
		got[string(r.Value)] = string(r.Key)
	}
	want := map[string]string{good[0].value: good[0].key, good[1].value: good[1].key, good[2].value: good[2].key, garbage: "", badUTF8: ""}
	if len(got) != len(want) {
		t.Errorf("auth got %d distinct lines, want %d", len(got), len(want))
	}
	for v, k := range want {
		if gk, ok := got[v]; !ok || gk != k {
			t.Errorf("line %q: present %v key %q, want key %q", v, ok, gk, k)
		}
	}
	if n := topicCount(t, b, "auth"); n != 5 {
		t.Errorf("auth holds %d records, want 5", n)
	}

	qrecs := newConsumer(t, b, "quarantine").until(2, 30*time.Second)
	var qs []*schemas.Quarantine
	for _, r := range qrecs {
		rec, err := schemas.UnmarshalJSONRecord(r.Value)
		if err != nil {
			t.Fatalf("quarantine record: %v", err)
		}
		qs = append(qs, rec.(*schemas.Quarantine))
	}
	if len(qs) != 2 {
		t.Fatalf("%d quarantine records", len(qs))
	}
	if qs[1].Reason == "" || len(qs[0].Raw) > len(qs[1].Raw) {
		qs[0], qs[1] = qs[1], qs[0]
	}
	for _, q := range qs {
		if q.Reason != parse.ReasonLineTooLong || q.SourceFormat != "sshd" {
			t.Errorf("quarantine reason %q format %q", q.Reason, q.SourceFormat)
		}
	}
	if string(qs[0].Raw) != long1 {
		t.Errorf("first long line not kept whole: %d bytes, want %d", len(qs[0].Raw), len(long1))
	}
	if !strings.Contains(qs[0].Message, fmt.Sprintf("%d bytes > 65536", len(long1))) {
		t.Errorf("message: %s", qs[0].Message)
	}
	if string(qs[1].Raw) != long2[:512<<10] || !strings.Contains(qs[1].Message, fmt.Sprintf("%d bytes > 65536", len(long2))) ||
		!strings.Contains(qs[1].Message, "only the first 524288 bytes are kept") {
		t.Errorf("second long line: kept %d bytes, message %q", len(qs[1].Raw), qs[1].Message)
	}
}

// memProducer acknowledges (or fails) records in memory, asynchronously
// like a real client.
type memProducer struct {
	mu   sync.Mutex
	recs []kgo.Record
	fail func(i int) error
	wg   sync.WaitGroup
}

func (p *memProducer) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	i := len(p.recs)
	c := *r
	c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	p.recs = append(p.recs, c)
	var err error
	if p.fail != nil {
		err = p.fail(i)
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		promise(r, err)
	}()
}

func (p *memProducer) Flush(context.Context) error { p.wg.Wait(); return nil }

// TestFailedRecordStopsAndHoldsPosition fails one record: Run reports the
// error and the persisted position stays before that record's line.
func TestFailedRecordStopsAndHoldsPosition(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "auth.log")
	lines := genLines(t, 5, int(gen.Auth), 5000)
	data := joinLines(lines)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const failAt = 2500
	p := &memProducer{fail: func(i int) error {
		if i == failAt {
			return fmt.Errorf("broker said no")
		}
		return nil
	}}
	state := filepath.Join(dir, "state.json")
	g, err := New(p, Options{Topic: "auth", Format: "sshd", QuarantineTopic: "q", StateFile: state, BatchRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(context.Background(), []string{name})
	if err == nil || !strings.Contains(err.Error(), "broker said no") {
		t.Fatalf("Run error %v, want the produce failure", err)
	}
	if st.Failed != 1 {
		t.Errorf("stats: %v", st)
	}
	pos := readState(t, state)[0]
	failedStart := int64(len(joinLines(lines[:failAt])))
	if pos.Offset > failedStart || pos.Offset < failedStart-int64(len(joinLines(lines[failAt-100:failAt]))) {
		t.Errorf("persisted offset %d; the failed line starts at %d (batches of 100)", pos.Offset, failedStart)
	}
}

func readState(t testing.TB, name string) []Position {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Files
}

// TestStateFileIsLocked: two ingesters cannot share a state file.
func TestStateFileIsLocked(t *testing.T) {
	state := filepath.Join(t.TempDir(), "s.json")
	s1, err := openState(state)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.close()
	if _, err := openState(state); err == nil || !strings.Contains(err.Error(), "in use by another ingester") {
		t.Fatalf("second open: %v", err)
	}
}

// FuzzIngest feeds arbitrary bytes (binary garbage, invalid UTF-8, long
// lines, CRs) through the whole ingester with format auto: it must not
// fail, and every line must come out exactly once, raw on the topic or
// (over-long) as a quarantine record, in input order.
func FuzzIngest(f *testing.F) {
	f.Add([]byte("Jan  1 00:00:00 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2\n\xff\xfe\x00garbage\n"))
	f.Add([]byte("{\"event_type\":\"alert\",\"src_ip\":\"\xc3\x28\"}\r\n" + strings.Repeat("x", 300) + "\nend"))
	f.Add([]byte("\n\n\r\n\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max, keep = 100, 150
		p := &memProducer{}
		g, err := New(p, Options{Topic: "t", Format: "auto", QuarantineTopic: "q", MaxLineSize: max, LongLineKeep: keep, Stdin: bytes.NewReader(in)})
		if err != nil {
			t.Fatal(err)
		}
		st, err := g.Run(context.Background(), []string{"-"})
		if err != nil {
			t.Fatal(err)
		}
		want := reference(in, max, keep)
		if len(p.recs) != len(want) || st.Lines != int64(len(want)) || st.Acked != int64(len(want)) {
			t.Fatalf("%d records, stats %v; want %d lines", len(p.recs), st, len(want))
		}
		for i, r := range p.recs {
			w := want[i]
			if !w.long {
				if r.Topic != "t" || string(r.Value) != w.value {
					t.Fatalf("line %d: %s %q, want t %q", i, r.Topic, r.Value, w.value)
				}
				continue
			}
			rec, err := schemas.UnmarshalJSONRecord(r.Value)
			if err != nil || r.Topic != "q" {
				t.Fatalf("line %d: quarantine record on %s: %v", i, r.Topic, err)
			}
			if q := rec.(*schemas.Quarantine); string(q.Raw) != w.value || q.Reason != parse.ReasonLineTooLong {
				t.Fatalf("line %d: quarantined %q (%s), want %q", i, q.Raw, q.Reason, w.value)
			}
		}
	})
}
