package service

import (
	"bufio"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/internal/gen"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// codecRecords parses generated traffic of every source format, plus real
// syslog lines, and sets the consumer's lineage columns on some, so that
// every column kind holds non-zero values somewhere.
func codecRecords(t testing.TB) []schemas.Record {
	t.Helper()
	recs, _ := genLines(t, gen.Options{Seed: 3, Rate: 200, Duration: 20 * time.Second})
	ps := map[string]parse.Parser{}
	for _, src := range testSources {
		p, err := parse.New(src.Format, parse.Options{Location: time.UTC})
		if err != nil {
			t.Fatal(err)
		}
		ps[src.Topic] = p
	}
	var out []schemas.Record
	for i, r := range recs {
		rec, err := ps[r.Topic].Parse(r.Value)
		if err != nil {
			continue
		}
		if i%3 == 0 {
			c := rec.Common()
			c.KafkaTopic, c.KafkaPartition, c.KafkaOffset = r.Topic, int32(i%7), int64(i)*1e9
			c.KafkaTimestamp, c.IngestTime = time.Unix(1700000000, int64(i)).UTC(), time.Unix(0, -int64(i)).UTC()
		}
		out = append(out, rec)
	}
	f, err := os.Open("../../schemas/parse/testdata/Linux_2k.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sp, err := parse.New(parse.FormatSyslog, parse.Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan() && n < 200; n++ {
		if rec, err := sp.Parse(sc.Bytes()); err == nil {
			out = append(out, rec)
		}
	}
	seen := map[string]int{}
	for _, r := range out {
		seen[r.Dataset()]++
	}
	for _, ds := range []string{"auth", "firewall", "ids", "web", "syslog"} {
		if seen[ds] == 0 {
			t.Fatalf("no %s record to test with: %v", ds, seen)
		}
	}
	return out
}

// TestForwardEncodingRoundTrip: every column of every record reads the
// same after encoding and decoding (event_original only when asked for),
// and the origin comes back.
func TestForwardEncodingRoundTrip(t *testing.T) {
	scs, err := rpSchemas()
	if err != nil {
		t.Fatal(err)
	}
	recs := codecRecords(t)
	for _, withOriginal := range []bool{false, true} {
		for i, rec := range recs {
			sc := scs[rec.Dataset()]
			v := sc.appendForward(nil, rec, "firewall-topic", int32(i%5), int64(i)*12345, withOriginal)
			f, err := decodeForward(scs, v)
			if err != nil {
				t.Fatalf("record %d (%s): %v", i, rec.Dataset(), err)
			}
			if string(f.topic) != "firewall-topic" || f.partition != int32(i%5) || f.offset != int64(i)*12345 {
				t.Fatalf("record %d: origin %s/%d@%d", i, f.topic, f.partition, f.offset)
			}
			ds := schemas.Of(rec)
			for _, col := range ds.Fields() {
				acc, err := ds.Accessor(col.Name)
				if err != nil {
					t.Fatal(err)
				}
				want := acc.String(rec)
				if col.Name == "event_original" && !withOriginal {
					want = ""
				}
				if got := acc.String(f.rec); got != want {
					t.Fatalf("record %d (%s) column %s: %q after the round trip, want %q", i, rec.Dataset(), col.Name, got, want)
				}
			}
			if !f.rec.EventTime().Equal(rec.EventTime()) {
				t.Fatalf("record %d: event time %v, want %v", i, f.rec.EventTime(), rec.EventTime())
			}
		}
	}
}

// TestForwardDecodingRejectsDamage: every truncation of a valid encoding,
// a trailing byte, another version, an unknown dataset and another
// column layout are errors, never a panic or a half-filled record.
func TestForwardDecodingRejectsDamage(t *testing.T) {
	scs, err := rpSchemas()
	if err != nil {
		t.Fatal(err)
	}
	recs := codecRecords(t)
	for _, rec := range recs[:50] {
		v := scs[rec.Dataset()].appendForward(nil, rec, "auth", 1, 2, true)
		for n := range len(v) {
			if _, err := decodeForward(scs, v[:n]); err == nil {
				t.Fatalf("%s record truncated to %d of %d bytes decoded", rec.Dataset(), n, len(v))
			}
		}
		if _, err := decodeForward(scs, append(v[:len(v):len(v)], 0)); err == nil {
			t.Fatal("a trailing byte decoded")
		}
		bad := append([]byte(nil), v...)
		bad[0]++
		if _, err := decodeForward(scs, bad); err == nil {
			t.Fatal("another version decoded")
		}
	}
	// Another build's column layout: same dataset name, other fingerprint.
	var auth schemas.Record
	for _, r := range recs {
		if r.Dataset() == "auth" {
			auth = r
			break
		}
	}
	v := scs["auth"].appendForward(nil, auth, "auth", 0, 0, false)
	other := map[string]*rpSchema{}
	for k, sc := range scs {
		c := *sc
		c.fp++
		other[k] = &c
	}
	if _, err := decodeForward(other, v); err == nil {
		t.Fatal("a record of another column layout decoded")
	}
	if _, err := decodeForward(map[string]*rpSchema{}, v); err == nil {
		t.Fatal("a record of an unknown dataset decoded")
	}
}

// BenchmarkForwardCodec: encoding and decoding one generated record (the
// mix of the source topics), against parsing its line.
func BenchmarkForwardCodec(b *testing.B) {
	scs, err := rpSchemas()
	if err != nil {
		b.Fatal(err)
	}
	recs, _ := genLines(b, gen.Options{Seed: 3, Rate: 1000, Duration: 10 * time.Second})
	ps := map[string]parse.Parser{}
	for _, src := range testSources {
		ps[src.Topic], _ = parse.New(src.Format, parse.Options{Location: time.UTC})
	}
	var parsed []schemas.Record
	var lines [][]byte
	var topics []string
	for _, r := range recs {
		if rec, err := ps[r.Topic].Parse(r.Value); err == nil {
			parsed = append(parsed, rec)
			lines = append(lines, r.Value)
			topics = append(topics, r.Topic)
		}
	}
	enc := make([][]byte, len(parsed))
	size := 0
	for i, rec := range parsed {
		enc[i] = scs[rec.Dataset()].appendForward(nil, rec, topics[i], 1, int64(i), false)
		size += len(enc[i])
	}
	b.Run("encode", func(b *testing.B) {
		var buf []byte
		for i := 0; i < b.N; i++ {
			rec := parsed[i%len(parsed)]
			buf = scs[rec.Dataset()].appendForward(buf[:0], rec, topics[i%len(parsed)], 1, int64(i), false)
		}
		b.ReportMetric(float64(size)/float64(len(parsed)), "B/record")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := decodeForward(scs, enc[i%len(enc)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse-line", func(b *testing.B) {
		b.ReportAllocs()
		line := 0
		for _, l := range lines {
			line += len(l)
		}
		for i := 0; i < b.N; i++ {
			j := i % len(lines)
			if _, err := ps[topics[j]].Parse(lines[j]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(line)/float64(len(lines)), "B/record")
	})
}

// TestForwardedRecordsOfBothVersionsRead: a repartition record of the
// first version (raw line, origin and format in headers), as a replay
// after an upgrade reads it, and one of the current encoding give the
// same record and origin.
func TestForwardedRecordsOfBothVersionsRead(t *testing.T) {
	rs, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Group: "g", Sources: testSources, AlertsTopic: "alerts", Rules: rs, TransactionalID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	topic := s.rp.topo.Load().topics["destination_ip"]
	if topic == "" {
		t.Fatalf("no repartition topic for destination_ip: %v", s.rp.topo.Load().topics)
	}
	line := "Mar  2 00:00:01 fw kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00 SRC=203.0.113.9 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=50 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0"
	src := &kgo.Record{Topic: "firewall", Partition: 2, Offset: 77, Value: []byte(line), Timestamp: time.Unix(1700000000, 0)}
	rec, _, err := s.parseRecord(s.workers[0], src)
	if err != nil {
		t.Fatal(err)
	}
	var b batch
	fwd := s.appendForwards(nil, &b, rec, src)
	if len(fwd) != 1 || fwd[0].Topic != topic || string(fwd[0].Key) != "10.0.0.5" || len(fwd[0].Headers) != 0 {
		t.Fatalf("forwards %+v", fwd)
	}
	legacy := &kgo.Record{Topic: topic, Partition: 1, Value: []byte(line), Headers: []kgo.RecordHeader{
		{Key: hdrTopic, Value: []byte("firewall")}, {Key: hdrPartition, Value: []byte("2")},
		{Key: hdrOffset, Value: []byte("77")}, {Key: hdrFormat, Value: []byte("netfilter")}}}
	current := &kgo.Record{Topic: topic, Partition: 1, Value: fwd[0].Value}
	for name, r := range map[string]*kgo.Record{"first version": legacy, "current": current} {
		got, o, err := s.parseRecord(s.workers[0], r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lane := s.topicLane(r.Topic)
		sv, ok := s.sourceOf(r, lane, o)
		if !ok || lane != 1 || sv.Topic != "firewall" || sv.Partition != 2 || sv.Offset != 77 {
			t.Fatalf("%s: source %+v lane %d ok %v", name, sv, lane, ok)
		}
		g, w := got.(*schemas.Firewall), rec.(*schemas.Firewall)
		if g.DestinationIP != w.DestinationIP || g.SourceIP != w.SourceIP || g.DestinationPort != w.DestinationPort || !g.Base.Timestamp.Equal(w.Base.Timestamp) {
			t.Fatalf("%s: %+v, want %+v", name, g, w)
		}
	}
}

// FuzzDecodeForward: a repartition topic is a Kafka topic, so any client
// with write access can put any bytes there. Decoding must return a record
// or an error, never panic, and a record it accepts must survive another
// round trip unchanged (dataset, origin and every column).
func FuzzDecodeForward(f *testing.F) {
	scs, err := rpSchemas()
	if err != nil {
		f.Fatal(err)
	}
	for i, rec := range codecRecords(f) {
		if i%7 == 0 {
			f.Add(scs[rec.Dataset()].appendForward(nil, rec, "t", int32(i), int64(i), i%2 == 0))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, v []byte) {
		fw, err := decodeForward(scs, v)
		if err != nil {
			return
		}
		again, err := decodeForward(scs, scs[fw.rec.Dataset()].appendForward(nil, fw.rec, string(fw.topic), fw.partition, fw.offset, true))
		if err != nil {
			t.Fatalf("accepted %x, but its re-encoding is refused: %v", v, err)
		}
		if string(again.topic) != string(fw.topic) || again.partition != fw.partition || again.offset != fw.offset {
			t.Fatalf("origin %s/%d@%d became %s/%d@%d", fw.topic, fw.partition, fw.offset, again.topic, again.partition, again.offset)
		}
		ds := schemas.Of(fw.rec)
		for _, col := range ds.Fields() {
			acc, err := ds.Accessor(col.Name)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := acc.String(fw.rec), acc.String(again.rec); a != b {
				t.Fatalf("column %s: %q became %q", col.Name, a, b)
			}
		}
	})
}
