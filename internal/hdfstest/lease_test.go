package hdfstest

import (
	"errors"
	"github.com/colinmarc/hdfs/v2"
	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
	"os"
	"testing"
	"time"
)

func TestSecondWriterRefused(t *testing.T) {
	s := Start(t)
	first := newClient(t, s, 10*time.Second)
	second := newClient(t, s, 10*time.Second)

	w, err := first.Create("/part-0001.parquet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("row group 1")); err != nil {
		t.Fatal(err)
	}
	// The file exists (under construction): the client's own check refuses.
	if _, err := second.Create("/part-0001.parquet"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Create: got %v, want os.ErrExist", err)
	}
	// CreateFile goes straight to the NameNode: the lease is the refusal.
	_, err = second.CreateFile("/part-0001.parquet", 1, DefaultBlockSize, 0o644)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("second CreateFile: got %v, want os.ErrExist", err)
	}
	_, err = second.Append("/part-0001.parquet")
	if ex := remoteException(err); ex != ExcAlreadyBeingCreated {
		t.Fatalf("second Append: got %v (exception %q), want %s", err, ex, ExcAlreadyBeingCreated)
	}
	st, _ := s.File("/part-0001.parquet")
	if !st.UnderConstruction || st.Holder != first.Name() {
		t.Fatalf("file state while writing = %+v; want under construction, held by %s", st, first.Name())
	}

	if err := w.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	// complete released the lease: the second client may append now.
	a, err := second.Append("/part-0001.parquet")
	if err != nil {
		t.Fatalf("Append after complete: %v", err)
	}
	if _, err := a.Write([]byte(", row group 2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Append Close: %v", err)
	}
	mustEqualBytes(t, "appended file", readFile(t, first, "/part-0001.parquet"), []byte("row group 1, row group 2"))
}

func TestUnderConstructionShowsCompleteBlocksOnly(t *testing.T) {
	const bs = 1 << 20
	s := Start(t, WithBlockSize(bs))
	writer := newClient(t, s, 10*time.Second)
	reader := newClient(t, s, 10*time.Second)
	data := randomBytes(2, 2*bs+bs/2)

	w, err := writer.Create("/growing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// Two full blocks were committed by addBlock; the third is still open.
	fi, err := reader.Stat("/growing")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 2*bs {
		t.Fatalf("size while under construction = %d, want %d (complete blocks only)", fi.Size(), 2*bs)
	}
	mustEqualBytes(t, "read while under construction", readFile(t, reader, "/growing"), data[:2*bs])

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "read after complete", readFile(t, reader, "/growing"), data)
}

func TestLeaseHardLimitRecoversAbandonedFile(t *testing.T) {
	s := Start(t, WithLeaseLimits(50*time.Millisecond, 300*time.Millisecond))
	dead, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{s.NameNodeAddr()}, User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dead.Create("/abandoned")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half written")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// The writer dies without closing: it stops renewing its lease.
	dead.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := s.File("/abandoned")
		if !st.UnderConstruction {
			if st.Length != int64(len("half written")) {
				t.Fatalf("recovered length = %d, want %d", st.Length, len("half written"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease never recovered: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := newClient(t, s, 10*time.Second)
	mustEqualBytes(t, "recovered file", readFile(t, c, "/abandoned"), []byte("half written"))
}

func TestCreateOverwriteReplacesFile(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	writeFile(t, c, "/f", []byte("old contents"))

	raw := dialRaw(t, s.NameNodeAddr())
	var created pb.CreateResponseProto
	err := raw.call("create", &pb.CreateRequestProto{
		Src: proto.String("/f"), Masked: &pb.FsPermissionProto{Perm: proto.Uint32(0o644)},
		ClientName: proto.String("raw-writer"), CreateFlag: proto.Uint32(flagCreate | flagOverwrite),
		CreateParent: proto.Bool(false), Replication: proto.Uint32(1), BlockSize: proto.Uint64(DefaultBlockSize),
	}, &created)
	if err != nil {
		t.Fatalf("create with OVERWRITE: %v", err)
	}
	if st, _ := s.File("/f"); !st.UnderConstruction || st.Holder != "raw-writer" || len(st.BlockLengths) != 0 {
		t.Fatalf("state after overwrite = %+v; want an empty file held by raw-writer", st)
	}
	if fs, err := c.StatFs(); err != nil || fs.Used != 0 {
		t.Fatalf("StatFs after overwrite = %+v, %v; want the old blocks freed", fs, err)
	}
	var done pb.CompleteResponseProto
	if err := raw.call("complete", &pb.CompleteRequestProto{Src: proto.String("/f"), ClientName: proto.String("raw-writer"), FileId: proto.Uint64(created.GetFs().GetFileId())}, &done); err != nil || !done.GetResult() {
		t.Fatalf("complete = %v, %v; want true", done.GetResult(), err)
	}
	if got := readFile(t, c, "/f"); len(got) != 0 {
		t.Fatalf("overwritten file has %q", got)
	}
}
