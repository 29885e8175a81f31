package schemas

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow/memory"
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
