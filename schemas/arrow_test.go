package schemas

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
)

// TestBatchBuilderReuse appends batches of different sizes through one
// builder (each batch sized by the previous one, then grown), with null
// times scattered over several bitmap bytes and strings of every length,
// and reads every row back from the Arrow records.
func TestBatchBuilderReuse(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	ds, _ := Lookup(DatasetQuarantine)
	b := NewBatchBuilder(ds, mem)
	defer b.Release()
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	row := 0
	for _, n := range []int{1000, 0, 37, 5000, 3} {
		var in []Record
		for i := 0; i < n; i++ {
			q := &Quarantine{Raw: []byte(fmt.Sprintf("\xff%0*d", row%300, row)), SourceFormat: "sshd", Reason: "invalid_utf8"}
			q.Base.ParseVersion = Version
			q.Base.KafkaOffset = int64(row)
			q.Base.KafkaPartition = int32(row % 7)
			if row%3 != 0 {
				q.Base.Timestamp = base.Add(time.Duration(row) * time.Millisecond)
			}
			if row%5 == 0 {
				q.Base.IngestTime = base
			}
			in = append(in, q)
			if err := b.Append(q); err != nil {
				t.Fatal(err)
			}
			row++
		}
		rec := b.NewRecordBatch()
		if rec.NumRows() != int64(n) || b.Len() != 0 {
			t.Fatalf("batch of %d: record has %d rows, builder %d left", n, rec.NumRows(), b.Len())
		}
		var got []Record
		if err := ReadRows(ds, rec, func(r Record) error { got = append(got, r); return nil }); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		if len(got) != n {
			t.Fatalf("batch of %d: read %d rows", n, len(got))
		}
		for i := range in {
			if !reflect.DeepEqual(got[i], in[i]) {
				t.Fatalf("batch of %d, row %d:\n got %+v\nwant %+v", n, i, got[i], in[i])
			}
		}
	}
}

// TestOptionalColumnsReadTheSame: files written before non-time columns
// became REQUIRED have every column OPTIONAL; a reader must get the same
// records from both.
func TestOptionalColumnsReadTheSame(t *testing.T) {
	for _, r := range sampleRecords() {
		ds := Of(r)
		in := []Record{r, ds.New(), r}
		b := NewBatchBuilder(ds, nil)
		for _, x := range in {
			if err := b.Append(x); err != nil {
				t.Fatal(err)
			}
		}
		rec := b.NewRecordBatch()
		b.Release()
		var fields []arrow.Field
		for _, f := range ds.ArrowSchema().Fields() {
			if f.Nullable != (f.Type.ID() == arrow.TIMESTAMP) {
				t.Fatalf("%s.%s: nullable %v; only times may be null", ds.Name(), f.Name, f.Nullable)
			}
			f.Nullable = true
			fields = append(fields, f)
		}
		old := array.NewRecord(arrow.NewSchema(fields, nil), rec.Columns(), rec.NumRows())
		rec.Release()
		var buf bytes.Buffer
		if err := pqarrow.WriteTable(array.NewTableFromRecords(old.Schema(), []arrow.Record{old}), &buf, 1024, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema())); err != nil {
			t.Fatal(err)
		}
		old.Release()
		got := readParquet(t, ds, buf.Bytes())
		if len(got) != len(in) {
			t.Fatalf("%s: read %d rows, want %d", ds.Name(), len(got), len(in))
		}
		for i := range in {
			if !reflect.DeepEqual(got[i], in[i]) {
				t.Errorf("%s row %d:\n got %+v\nwant %+v", ds.Name(), i, got[i], in[i])
			}
		}
	}
}
