package schemas

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// common returns lineage-complete common fields; times carry microseconds
// because Parquet keeps microseconds.
func common(host, raw string) Common {
	return Common{
		Timestamp:      time.Date(2024, 12, 10, 6, 55, 46, 123456000, time.UTC),
		Host:           host,
		EventOriginal:  raw,
		ParseVersion:   Version,
		KafkaTopic:     "logs.raw",
		KafkaPartition: 3,
		KafkaOffset:    1 << 40,
		KafkaTimestamp: time.Date(2024, 12, 10, 6, 55, 47, 1000, time.UTC),
		IngestTime:     time.Date(2024, 12, 10, 6, 55, 48, 999000, time.UTC),
	}
}

func sampleRecords() []Record {
	return []Record{
		&Auth{Base: common("LabSZ", "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2"),
			Program: "sshd", PID: 24200, User: "webmaster", SourceIP: "173.234.31.186", SourcePort: 38926,
			Method: "password", Outcome: OutcomeFailure, Action: "ssh_login", Reason: "invalid user", Count: 1},
		&Firewall{Base: common("gw", "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 PROTO=TCP SPT=4242 DPT=22"),
			Action: "deny", Transport: "tcp", NetworkType: "ipv4", SourceIP: "10.0.0.1", SourcePort: 4242,
			DestinationIP: "10.0.0.2", DestinationPort: 22, InInterface: "eth0", Bytes: 60, Packets: 1, Rule: "UFW BLOCK"},
		&IDS{Base: common("sensor-1", `{"event_type":"alert"}`), SignatureID: 2019236, Signature: "ET WEB_SERVER Possible CVE-2014-6271 \"Attempt\"",
			Category: "Attempted Administrator Privilege Gain", Severity: 1, Transport: "tcp", AppProtocol: "http",
			SourceIP: "2001:db8::1", SourcePort: 80, DestinationIP: "2001:db8::2", DestinationPort: 51234, Action: "allowed",
			FlowID: 1 << 50, Interface: "eth0"},
		&Web{Base: common("example.com", `::1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a?b=c HTTP/1.0" 200 2326`),
			SourceIP: "::1", User: "frank", Method: "GET", Path: "/a", Query: "b=c", HTTPVersion: "1.0", Status: 200,
			Bytes: 2326, Referrer: "http://ref/", UserAgent: "Mozilla/5.0 (\"quoted\")\t\u2028", Duration: 1500000, DestinationIP: "192.0.2.1"},
		&Syslog{Base: common("combo", "Jun 14 15:16:01 combo syslogd 1.4.1: restart."), Program: "syslogd", PID: 0, Message: "restart. ünïcödé"},
		&Quarantine{Base: common("", ""), Raw: []byte("bad \xff\xfe line\x00\n"), SourceFormat: "sshd", Reason: "not_syslog", Message: "no timestamp"},
	}
}

func TestRegistry(t *testing.T) {
	want := []string{"auth", "firewall", "ids", "web", "syslog", "quarantine"}
	var got []string
	for _, d := range Datasets() {
		got = append(got, d.Name())
		if d2, ok := Lookup(d.Name()); !ok || d2 != d {
			t.Errorf("Lookup(%s) = %v, %v", d.Name(), d2, ok)
		}
		if r := d.New(); r.Dataset() != d.Name() || Of(r) != d {
			t.Errorf("%s.New() is a %s record", d.Name(), r.Dataset())
		}
		// Every dataset starts with the common and lineage columns.
		var names []string
		for _, f := range d.Fields() {
			names = append(names, f.Name)
		}
		wantPrefix := []string{"timestamp", "host_name", "event_original", "parse_version", "kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "ingest_time"}
		if !reflect.DeepEqual(names[:len(wantPrefix)], wantPrefix) {
			t.Errorf("%s columns start %v", d.Name(), names[:len(wantPrefix)])
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Datasets() = %v, want %v", got, want)
	}
	if _, ok := Lookup("nope"); ok {
		t.Fatal("Lookup(nope) succeeded")
	}
	// Fields returns a copy: changing it leaves the descriptor intact.
	d, _ := Lookup("auth")
	fs := d.Fields()
	fs[0].Name = "mutated"
	if d.Fields()[0].Name != "timestamp" {
		t.Fatal("Fields() exposed the descriptor")
	}
	f, ok := d.Field("source_port")
	if !ok || f.Kind != KindUint16 || f.ECS != "source.ip" && f.ECS != "source.port" || f.ClickHouse != "UInt16" {
		t.Fatalf("auth.source_port = %+v", f)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		b := AppendJSON(nil, r)
		var generic map[string]any
		if err := json.Unmarshal(b, &generic); err != nil {
			t.Fatalf("%s: invalid JSON %s: %v", r.Dataset(), b, err)
		}
		if generic["dataset"] != r.Dataset() || len(generic) != Of(r).NumFields()+1 {
			t.Errorf("%s: dataset=%v keys=%d", r.Dataset(), generic["dataset"], len(generic))
		}
		got, err := UnmarshalJSONRecord(b)
		if err != nil {
			t.Fatalf("%s: %v", r.Dataset(), err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", r.Dataset(), got, r)
		}
	}
	// Exact encoding of a few values.
	b := string(MarshalJSON(sampleRecords()[0]))
	for _, frag := range []string{`{"dataset":"auth","timestamp":"2024-12-10T06:55:46.123456Z"`, `"source_port":38926`, `"kafka_offset":1099511627776`, `"event_outcome":"failure"`} {
		if !strings.Contains(b, frag) {
			t.Errorf("JSON %s lacks %s", b, frag)
		}
	}
	// Zero times are null and read back as zero.
	a := &Auth{User: "x"}
	b = string(MarshalJSON(a))
	if !strings.Contains(b, `"timestamp":null`) {
		t.Errorf("zero time encoded as %s", b)
	}
	if got, err := UnmarshalJSONRecord([]byte(b)); err != nil || !reflect.DeepEqual(got, Record(a)) {
		t.Errorf("zero record round trip: %+v %v", got, err)
	}
}

func TestUnmarshalJSONRecordErrors(t *testing.T) {
	for _, in := range []string{
		``, `[]`, `null`, `{}`, `{"dataset":"nope"}`, `{"dataset":1}`,
		`{"dataset":"auth","source_port":70000}`, `{"dataset":"auth","source_port":"22"}`,
		`{"dataset":"auth","process_pid":1.5}`, `{"dataset":"auth","timestamp":"yesterday"}`,
		`{"dataset":"auth"} {}`, `{"dataset":"quarantine","raw":"***"}`,
	} {
		if r, err := UnmarshalJSONRecord([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSONRecord(%q) = %+v, want error", in, r)
		}
	}
	// Unknown keys (a newer writer) are ignored; epoch milliseconds accepted.
	r, err := UnmarshalJSONRecord([]byte(`{"dataset":"syslog","new_column":[1,2],"timestamp":1733813746123,"message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	s := r.(*Syslog)
	if s.Message != "hi" || !s.Base.Timestamp.Equal(time.Date(2024, 12, 10, 6, 55, 46, 123e6, time.UTC)) {
		t.Fatalf("got %+v", s)
	}
}

// writeParquet writes records of one dataset to an in-memory Parquet file.
func writeParquet(t *testing.T, ds *Dataset, recs []Record) []byte {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	bb := NewBatchBuilder(ds, mem)
	defer bb.Release()
	for _, r := range recs {
		if err := bb.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	if bb.Len() != len(recs) {
		t.Fatalf("Len = %d, want %d", bb.Len(), len(recs))
	}
	rec := bb.NewRecordBatch()
	defer rec.Release()
	if bb.Len() != 0 {
		t.Fatalf("Len after NewRecordBatch = %d", bb.Len())
	}
	tbl := array.NewTableFromRecords(ds.ArrowSchema(), []arrow.Record{rec})
	defer tbl.Release()
	var buf bytes.Buffer
	if err := pqarrow.WriteTable(tbl, &buf, 1024, parquet.NewWriterProperties(parquet.WithAllocator(mem)), pqarrow.DefaultWriterProps()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readParquet(t *testing.T, ds *Dataset, data []byte) []Record {
	t.Helper()
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(data), parquet.NewReaderProperties(memory.DefaultAllocator), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 0)
	defer tr.Release()
	var out []Record
	for tr.Next() {
		if err := ReadRows(ds, tr.Record(), func(r Record) error { out = append(out, r); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestParquetRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		ds := Of(r)
		zero := ds.New() // a record with every field zero, lineage unset
		in := []Record{r, zero, r}
		got := readParquet(t, ds, writeParquet(t, ds, in))
		if len(got) != len(in) {
			t.Fatalf("%s: read %d rows, want %d", ds.Name(), len(got), len(in))
		}
		for i := range in {
			want := in[i]
			if !reflect.DeepEqual(got[i], want) {
				t.Errorf("%s row %d:\n got %+v\nwant %+v", ds.Name(), i, got[i], want)
			}
		}
	}
}

func TestQuarantineInvalidUTF8(t *testing.T) {
	raw := []byte("Dec 10 \xc3\x28 sshd[1]: \xff\xfe\xfd end")
	q := &Quarantine{Base: common("h", ""), Raw: raw, SourceFormat: "sshd", Reason: "invalid_utf8"}
	j, err := UnmarshalJSONRecord(MarshalJSON(q))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(j.(*Quarantine).Raw, raw) {
		t.Fatalf("JSON changed the raw bytes: %q", j.(*Quarantine).Raw)
	}
	ds, _ := Lookup(DatasetQuarantine)
	p := readParquet(t, ds, writeParquet(t, ds, []Record{q}))
	if len(p) != 1 || !bytes.Equal(p[0].(*Quarantine).Raw, raw) {
		t.Fatalf("Parquet changed the raw bytes: %+v", p)
	}
}

func TestReadRowsProjectsByName(t *testing.T) {
	// A file written before a column existed: only some columns, in
	// another order, plus one this version does not know.
	mem := memory.NewGoAllocator()
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "message", Type: arrow.BinaryTypes.String},
		{Name: "unknown_future", Type: arrow.PrimitiveTypes.Int64},
		{Name: "timestamp", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	}, nil)
	rb := array.NewRecordBuilder(mem, sch)
	defer rb.Release()
	rb.Field(0).(*array.StringBuilder).Append("hello")
	rb.Field(1).(*array.Int64Builder).Append(7)
	rb.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(1733813746123))
	rec := rb.NewRecord()
	defer rec.Release()
	ds, _ := Lookup(DatasetSyslog)
	var got []Record
	if err := ReadRows(ds, rec, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	want := &Syslog{Base: Common{Timestamp: time.UnixMilli(1733813746123).UTC()}, Message: "hello"}
	if len(got) != 1 || !reflect.DeepEqual(got[0], Record(want)) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// A type change is an error, not silent garbage.
	bad := arrow.NewSchema([]arrow.Field{{Name: "process_pid", Type: arrow.BinaryTypes.String}}, nil)
	rb2 := array.NewRecordBuilder(mem, bad)
	defer rb2.Release()
	rb2.Field(0).(*array.StringBuilder).Append("12")
	rec2 := rb2.NewRecord()
	defer rec2.Release()
	if err := ReadRows(ds, rec2, func(Record) error { return nil }); err == nil {
		t.Fatal("ReadRows accepted a string process_pid")
	}
}

func TestBatchBuilderRejectsOtherDataset(t *testing.T) {
	ds, _ := Lookup(DatasetAuth)
	bb := NewBatchBuilder(ds, nil)
	defer bb.Release()
	if err := bb.Append(&Web{}); err == nil {
		t.Fatal("auth builder accepted a web record")
	}
	if bb.Len() != 0 {
		t.Fatalf("Len = %d", bb.Len())
	}
}

func TestClickHouseDDL(t *testing.T) {
	for _, d := range Datasets() {
		ddl := d.ClickHouseDDL("lambdalog", d.Name()+"_events", DDLOptions{})
		for _, f := range d.Fields() {
			line := "`" + f.Name + "` " + f.ClickHouse
			if !strings.Contains(ddl, line) {
				t.Errorf("%s DDL lacks %q:\n%s", d.Name(), line, ddl)
			}
		}
		for _, frag := range []string{"CREATE TABLE `lambdalog`.`" + d.Name() + "_events`", "ENGINE = MergeTree()", "PARTITION BY toYYYYMMDD(timestamp)", "ORDER BY (", "`timestamp_ms` UInt16", "`kafka_offset` Int64", "`ingest_time` DateTime('UTC')"} {
			if !strings.Contains(ddl, frag) {
				t.Errorf("%s DDL lacks %q", d.Name(), frag)
			}
		}
		for _, bad := range []string{"DateTime64", "LowCardinality", "Nullable", "TTL"} {
			if strings.Contains(ddl, bad) {
				t.Errorf("%s default DDL uses %s, which ClickHouse 18.16 lacks", d.Name(), bad)
			}
		}
		// One column line per ClickHouse column, in ClickHouseColumns order.
		cols := d.ClickHouseColumns()
		pos := -1
		for _, c := range cols {
			i := strings.Index(ddl, "    `"+c+"` ")
			if i <= pos {
				t.Errorf("%s: column %s out of order or missing", d.Name(), c)
			}
			pos = i
		}
		if n := strings.Count(ddl, "\n    `"); n != len(cols) {
			t.Errorf("%s: %d column lines, %d columns", d.Name(), n, len(cols))
		}
		lc := d.ClickHouseDDL("", "t", DDLOptions{LowCardinality: true, IfNotExists: true, TTLDays: 30})
		if !strings.Contains(lc, "CREATE TABLE IF NOT EXISTS `t`") || !strings.Contains(lc, "`host_name` LowCardinality(String)") || !strings.Contains(lc, "TTL timestamp + INTERVAL 30 DAY") {
			t.Errorf("%s options ignored:\n%s", d.Name(), lc)
		}
	}
}

func TestClickHouseRow(t *testing.T) {
	r := sampleRecords()[0]
	d := Of(r)
	row, err := d.ClickHouseRow(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	cols := d.ClickHouseColumns()
	if len(row) != len(cols) {
		t.Fatalf("%d values for %d columns", len(row), len(cols))
	}
	byName := map[string]any{}
	for i, c := range cols {
		byName[c] = row[i]
	}
	if byName["timestamp"] != time.Date(2024, 12, 10, 6, 55, 46, 0, time.UTC) || byName["timestamp_ms"] != uint16(123) {
		t.Errorf("timestamp = %v + %v ms", byName["timestamp"], byName["timestamp_ms"])
	}
	if byName["source_port"] != uint16(38926) || byName["user_name"] != "webmaster" || byName["kafka_partition"] != int32(3) {
		t.Errorf("row = %v", byName)
	}
	if _, err := d.ClickHouseRow(nil, &Web{}); err == nil {
		t.Error("ClickHouseRow accepted a web record for auth")
	}
	alter, err := d.ClickHouseAddColumn("db", "auth", "kafka_timestamp")
	if err != nil || len(alter) != 2 || alter[0] != "ALTER TABLE `db`.`auth` ADD COLUMN `kafka_timestamp` DateTime('UTC') DEFAULT toDateTime(0, 'UTC')" {
		t.Errorf("ClickHouseAddColumn = %q, %v", alter, err)
	}
}

func TestAccessors(t *testing.T) {
	recs := sampleRecords()
	auth, web := recs[0], recs[3]
	d := Of(auth)
	get := func(col string) Accessor {
		a, err := d.Accessor(col)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if s := get("user_name").String(auth); s != "webmaster" {
		t.Errorf("user_name = %q", s)
	}
	if n, ok := get("source_port").Int64(auth); !ok || n != 38926 {
		t.Errorf("source_port = %d %v", n, ok)
	}
	if s := get("source_port").String(auth); s != "38926" {
		t.Errorf("source_port string = %q", s)
	}
	if f, ok := get("process_pid").Float64(auth); !ok || f != 24200 {
		t.Errorf("pid float = %v %v", f, ok)
	}
	if n, ok := get("timestamp").Int64(auth); !ok || n != 1733813746123 {
		t.Errorf("timestamp ms = %d", n)
	}
	if s := get("timestamp").String(auth); s != "2024-12-10T06:55:46.123456Z" {
		t.Errorf("timestamp string = %q", s)
	}
	if s := string(get("host_name").AppendString([]byte("h="), auth)); s != "h=LabSZ" {
		t.Errorf("AppendString = %q", s)
	}
	if _, ok := get("user_name").Int64(auth); ok {
		t.Error("user_name read as an integer")
	}
	// A record of another dataset reads as empty, never as foreign memory.
	if s := get("user_name").String(web); s != "" {
		t.Errorf("auth accessor on web record = %q", s)
	}
	if _, err := d.Accessor("no_such"); err == nil {
		t.Error("Accessor(no_such) succeeded")
	}
	// Accessors read live values, not a snapshot.
	auth.(*Auth).User = "root"
	if s := get("user_name").String(auth); s != "root" {
		t.Errorf("after change user_name = %q", s)
	}
	q := recs[5]
	qa, _ := Of(q).Accessor("raw")
	if qa.String(q) != "bad \xff\xfe line\x00\n" {
		t.Errorf("raw = %q", qa.String(q))
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	r := sampleRecords()[0]
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendJSON(buf[:0], r)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkAccessorString(b *testing.B) {
	r := sampleRecords()[0]
	a, _ := Of(r).Accessor("source_ip")
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		n += len(a.String(r))
	}
	if n == 0 {
		b.Fatal("empty")
	}
}
