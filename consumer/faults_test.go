package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet/file"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdalog/lambdalog/internal/broker"
	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/kafkatest"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// produceLines writes sshdLine(from..to-1) to topic "auth".
func produceLines(ctx context.Context, t *testing.T, cl *kgo.Client, from, to int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: "auth", Key: []byte(strconv.Itoa(i % 13)), Value: []byte(sshdLine(i))})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed is the sum of the partitions' next offsets; -1 when the state
// cannot be read (a storage fault the test injected).
func committed(ctx context.Context, t *testing.T, fsys storage.FS) int64 {
	t.Helper()
	st, err := ReadState(ctx, fsys)
	if err != nil {
		t.Logf("read state: %v", err)
		return -1
	}
	var n int64
	for _, p := range st.Partitions {
		n += p.Next
	}
	return n
}

// consumeUntil runs consumers of group "g" until want offsets are committed,
// starting a new one whenever Run fails (as a supervisor restarts the
// process). It returns how many runs failed.
func consumeUntil(ctx context.Context, t *testing.T, fsys storage.FS, b *broker.Broker, want int64) int {
	t.Helper()
	failed := 0
	for committed(ctx, t, fsys) < want {
		if ctx.Err() != nil {
			t.Fatalf("committed %d of %d offsets after %d failed runs", committed(ctx, t, fsys), want, failed)
		}
		c, err := New(Options{FS: fsys, Client: []kgo.Opt{kgo.SeedBrokers(b.Addr())}, Group: "g", Sources: []Source{{"auth", "sshd"}},
			RollRecords: 400, RollInterval: 150 * time.Millisecond, SessionTimeout: 6 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.Run(rctx) }()
		var runErr error
	wait:
		for {
			select {
			case runErr = <-done:
				break wait
			case <-time.After(50 * time.Millisecond):
				if committed(ctx, t, fsys) >= want {
					cancel()
					runErr = <-done
					break wait
				}
			}
		}
		cancel()
		if runErr != nil {
			failed++
			t.Logf("run %d failed (restarting): %v", failed, runErr)
		}
	}
	return failed
}

func mustExact(ctx context.Context, t *testing.T, fsys storage.FS, want int64) {
	t.Helper()
	rep, err := Verify(ctx, fsys)
	if err != nil {
		t.Fatal(err)
	}
	var rows, next int64
	for _, p := range rep.Partitions {
		rows += p.Rows
	}
	next = committed(ctx, t, fsys)
	if !rep.OK || rows != want || next != want {
		t.Fatalf("verify: ok=%v rows=%d next=%d, want %d exactly once: %+v", rep.OK, rows, next, want, rep)
	}
}

// TestHDFSFaultsDuringCommits injects NameNode and DataNode failures while
// the consumer writes files, completes them and renames them: each either
// is retried or fails the run, and after restarts every offset is in the
// dataset exactly once.
func TestHDFSFaultsDuringCommits(t *testing.T) {
	faults := map[string]func(*hdfstest.Server) *hdfstest.Armed{
		"create fails":        func(s *hdfstest.Server) *hdfstest.Armed { return s.FailCall("create", 9, hdfstest.ExcIO) },
		"complete retriable":  func(s *hdfstest.Server) *hdfstest.Armed { return s.FailCall("complete", 5, hdfstest.ExcRetriable) },
		"complete refused":    func(s *hdfstest.Server) *hdfstest.Armed { return s.RefuseComplete(5) },
		"block write dropped": func(s *hdfstest.Server) *hdfstest.Armed { return s.DropWrite(4, 100) },
		"rename fails":        func(s *hdfstest.Server) *hdfstest.Armed { return s.FailCall("rename2", 6, hdfstest.ExcIO) },
		"rename retriable":    func(s *hdfstest.Server) *hdfstest.Armed { return s.FailCall("rename2", 7, hdfstest.ExcRetriable) },
		"getFileInfo fails":   func(s *hdfstest.Server) *hdfstest.Armed { return s.FailCall("getFileInfo", 40, hdfstest.ExcIO) },
		"addBlock fails":      func(s *hdfstest.Server) *hdfstest.Armed { return s.FailCall("addBlock", 5, hdfstest.ExcIO) },
	}
	for name, arm := range faults {
		t.Run(name, func(t *testing.T) {
			srv := hdfstest.Start(t)
			fsys, err := storage.Open(context.Background(), srv.URL()+"lambdalog", storage.Options{User: "test"})
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 2})
			cl := kafkatest.Client(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()

			a := arm(srv)
			produceLines(ctx, t, cl, 0, 1000)
			failed := consumeUntil(ctx, t, fsys, b, 1000)
			produceLines(ctx, t, cl, 1000, 2000)
			failed += consumeUntil(ctx, t, fsys, b, 2000)
			if a.Fired() == 0 {
				t.Error("the fault never fired: the test did not exercise it")
			}
			t.Logf("%d runs failed and were restarted", failed)
			mustExact(ctx, t, fsys, 2000)
		})
	}
}

// TestBrokerFaults fails fetches and group offset commits for a while (the
// broker drops the connection): the client retries, the dataset is the
// resume point, and every offset is in it exactly once.
func TestBrokerFaults(t *testing.T) {
	fsys, err := storage.Open(context.Background(), "file://"+t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 3})
	cl := kafkatest.Client(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	// Every fetch and offset commit fails during the first second after
	// the first one arrives.
	var fetchFails, commitFails atomic.Int32
	kc := b.Cluster()
	failFor := func(key kmsg.Key, n *atomic.Int32) {
		var since atomic.Int64
		kc.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			kc.KeepControl()
			since.CompareAndSwap(0, time.Now().UnixNano())
			if time.Since(time.Unix(0, since.Load())) < time.Second {
				n.Add(1)
				return nil, errors.New("injected failure"), true
			}
			return nil, nil, false
		})
	}
	failFor(kmsg.Fetch, &fetchFails)
	failFor(kmsg.OffsetCommit, &commitFails)
	produceLines(ctx, t, cl, 0, 3000)
	consumeUntil(ctx, t, fsys, b, 3000)
	produceLines(ctx, t, cl, 3000, 6000)
	consumeUntil(ctx, t, fsys, b, 6000)
	if fetchFails.Load() < 1 || commitFails.Load() < 1 {
		t.Errorf("faults not exercised: %d fetches, %d offset commits failed", fetchFails.Load(), commitFails.Load())
	}
	mustExact(ctx, t, fsys, 6000)

}

// TestParquetReadBack reads the committed files with pqarrow: each row is
// the line produced at its offset (parsed fields and lineage), and the file
// metadata names the topic, partition and offset range.
func TestParquetReadBack(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		b := kafkatest.Start(t, kafkatest.Options{Topics: []string{"auth"}, Partitions: 1})
		cl := kafkatest.Client(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		const n = 1500
		// One partition: offset i holds sshdLine(i). Two runs, two commits.
		produceLines(ctx, t, cl, 0, n/2)
		consumeUntil(ctx, t, fsys, b, n/2)
		produceLines(ctx, t, cl, n/2, n)
		consumeUntil(ctx, t, fsys, b, n)

		st, err := ReadState(ctx, fsys)
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]int, n)
		files := st.Files("auth")
		if len(files) < 2 {
			t.Fatalf("want several committed files, got %d", len(files))
		}
		for _, f := range files {
			r, err := fsys.Open(ctx, f.Final)
			if err != nil {
				t.Fatal(err)
			}
			pf, err := file.NewParquetReader(io.NewSectionReader(r, 0, r.Size()))
			if err != nil {
				t.Fatalf("%s: %v", f.Final, err)
			}
			kv := pf.MetaData().KeyValueMetadata()
			wantKV := map[string]string{
				"lambdalog.kafka_topic": "auth", "lambdalog.kafka_partition": "0",
				"lambdalog.first_offset": strconv.FormatInt(f.FirstOffset, 10),
				"lambdalog.last_offset":  strconv.FormatInt(f.LastOffset, 10),
			}
			for k, v := range wantKV {
				if got := kv.FindValue(k); got == nil || *got != v {
					t.Errorf("%s: metadata %s = %v, want %s", f.Final, k, got, v)
				}
			}
			fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := fr.ReadTable(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tbl.NumRows() != f.Rows {
				t.Errorf("%s: %d rows, manifest says %d", f.Final, tbl.NumRows(), f.Rows)
			}
			checkRows(t, tbl, f, seen)
			tbl.Release()
			pf.Close()
			r.Close()
		}
		for i, c := range seen {
			if c != 1 {
				t.Fatalf("offset %d read back %d times", i, c)
			}
		}
	})
}

func column(t *testing.T, tbl arrow.Table, name string) arrow.Array {
	t.Helper()
	idx := tbl.Schema().FieldIndices(name)
	if len(idx) != 1 {
		t.Fatalf("no column %s in %v", name, tbl.Schema())
	}
	chunks := tbl.Column(idx[0]).Data().Chunks()
	if len(chunks) != 1 {
		arr, err := array.Concatenate(chunks, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		return arr
	}
	return chunks[0]
}

func checkRows(t *testing.T, tbl arrow.Table, f FileRef, seen []int) {
	t.Helper()
	offs := column(t, tbl, "kafka_offset").(*array.Int64)
	parts := column(t, tbl, "kafka_partition").(*array.Int32)
	ports := column(t, tbl, "source_port").(*array.Uint16)
	topic, user, ip, orig := column(t, tbl, "kafka_topic"), column(t, tbl, "user_name"), column(t, tbl, "source_ip"), column(t, tbl, "event_original")
	ts := column(t, tbl, "timestamp").(*array.Timestamp)
	unit := ts.DataType().(*arrow.TimestampType).Unit
	for r := 0; r < offs.Len(); r++ {
		i := int(offs.Value(r))
		if i < int(f.FirstOffset) || i > int(f.LastOffset) || i >= len(seen) {
			t.Fatalf("%s: offset %d outside the file's range", f.Final, i)
		}
		seen[i]++
		wantTS := time.Date(2026, 11, 23, 10, (i/60)%60, i%60, (i%1000)*1e6, time.UTC)
		got := []string{topic.ValueStr(r), user.ValueStr(r), ip.ValueStr(r), orig.ValueStr(r)}
		want := []string{"auth", fmt.Sprintf("user%d", i%50), fmt.Sprintf("198.18.%d.%d", (i/250)%250, i%250), sshdLine(i)}
		for k := range got {
			if got[k] != want[k] {
				t.Fatalf("%s offset %d: column %d = %q, want %q", f.Final, i, k, got[k], want[k])
			}
		}
		if parts.Value(r) != 0 || ports.Value(r) != uint16(1024+i%60000) || !ts.Value(r).ToTime(unit).Equal(wantTS) {
			t.Fatalf("%s offset %d: partition %d port %d time %v, want 0, %d, %v", f.Final, i, parts.Value(r), ports.Value(r), ts.Value(r).ToTime(unit), 1024+i%60000, wantTS)
		}
	}
}
