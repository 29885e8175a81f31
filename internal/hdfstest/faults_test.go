package hdfstest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
)

func TestFaultFailCall(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	f := s.FailCall("complete", 1, ExcRetriable)

	w, err := c.Create("/out")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("batch")); err != nil {
		t.Fatal(err)
	}
	err = w.Close()
	if ex := remoteException(err); ex != ExcRetriable {
		t.Fatalf("Close with complete failing: got %v (exception %q), want %s", err, ex, ExcRetriable)
	}
	if f.Fired() != 1 {
		t.Fatalf("fault fired %d times, want 1", f.Fired())
	}
	if st, _ := s.File("/out"); !st.UnderConstruction || st.Length != 0 {
		t.Fatalf("after a failed complete the file is %+v; want under construction, nothing visible", st)
	}
	// A second Close sends complete without the last block (colinmarc
	// forgets it), which HDFS cannot complete: the block was never
	// committed. The file stays invisible until lease recovery.
	if err := w.Close(); !hdfs.IsErrReplicating(err) {
		t.Fatalf("second Close: got %v, want ErrReplicating", err)
	}
	if fi, err := c.Stat("/out"); err != nil || fi.Size() != 0 {
		t.Fatalf("Stat = %v, %v; want 0 visible bytes", fi, err)
	}
}

func TestFaultFailAfterLosesResponse(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	s.Faults().Add(Fault{Op: "complete", Nth: 1, Action: FailAfter, Exception: ExcIO, Message: "connection reset"})

	w, err := c.Create("/out")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("batch")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); remoteException(err) != ExcIO {
		t.Fatalf("Close: got %v, want the injected %s", err, ExcIO)
	}
	// The NameNode did complete the file: only the answer was lost.
	if st, _ := s.File("/out"); st.UnderConstruction || st.Length != 5 {
		t.Fatalf("file = %+v; want complete with 5 bytes", st)
	}
	mustEqualBytes(t, "/out", readFile(t, c, "/out"), []byte("batch"))
}

func TestFaultHangCall(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, time.Second)
	h := s.HangCall("addBlock", 1)

	w, err := c.Create("/hung")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = w.Write([]byte("data"))
	if err == nil {
		t.Fatal("Write with addBlock hanging succeeded")
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write error = %v; want the client's timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("client gave up after %v, want about 1s", d)
	}
	h.Release()
	if h.Fired() != 1 {
		t.Fatalf("hang fired %d times", h.Fired())
	}
	// Later calls pass: a fresh client works.
	writeFile(t, newClient(t, s, 10*time.Second), "/after", []byte("ok"))
}

func TestFaultHangEndsOnClose(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s.HangCall("getFileInfo", 0)
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{s.NameNodeAddr()}, User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Stat("/x"); done <- err }()
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Stat succeeded although the call hung until Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the hung call")
	}
}

func TestFaultSlowCalls(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	slow := s.SlowCalls(150 * time.Millisecond)
	start := time.Now()
	if _, err := c.Stat("/"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("Stat took %v with a 150ms delay armed", d)
	}
	slow.Remove()
	start = time.Now()
	if _, err := c.Stat("/"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 150*time.Millisecond {
		t.Fatalf("Stat took %v after the delay was removed", d)
	}
}

func TestFaultDropWrite(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 5*time.Second)
	s.DropWrite(1, 100<<10)

	w, err := c.Create("/dropped")
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write(randomBytes(3, 900<<10))
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("write through a dropped DataNode connection succeeded")
	}
	if st, _ := s.File("/dropped"); !st.UnderConstruction || st.Length != 0 {
		t.Fatalf("file after the dropped write = %+v; want under construction, nothing visible", st)
	}
}

func TestFaultDropRead(t *testing.T) {
	// On a packet boundary and in the middle of one.
	for _, after := range []int64{128 << 10, 100_000} {
		s := Start(t)
		c := newClient(t, s, 5*time.Second)
		data := randomBytes(4, 800<<10)
		writeFile(t, c, "/f", data)
		s.DropRead(1, after)

		f, err := c.Open("/f")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err == nil {
			t.Fatalf("after %d: read through a dropped DataNode connection succeeded", after)
		}
		if int64(len(got)) > after {
			t.Fatalf("after %d: got %d bytes before the drop", after, len(got))
		}
		mustEqualBytes(t, "bytes before the drop", got, data[:len(got)])
		// Only the first read was cut.
		mustEqualBytes(t, "second read", readFile(t, c, "/f"), data)
	}
}

func TestFaultDataNodeFail(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 5*time.Second)
	s.Faults().Add(Fault{Op: OpWriteBlock, Nth: 1, Action: Fail, Message: "disk full"})
	w, err := c.Create("/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write succeeded although the DataNode refused the block")
	}
}

func TestFaultRefuseComplete(t *testing.T) {
	s := Start(t)
	writer := newClient(t, s, 10*time.Second)
	other := newClient(t, s, 10*time.Second)
	refuse := s.RefuseComplete(0)

	if err := writer.MkdirAll("/_tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := writer.Create("/_tmp/part-7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("uncommitted rows")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Close(); !hdfs.IsErrReplicating(err) {
			t.Fatalf("Close #%d with complete refused: got %v, want ErrReplicating", i+1, err)
		}
	}
	if refuse.Fired() != 3 {
		t.Fatalf("refusal fired %d times, want 3", refuse.Fired())
	}
	// Not visible as complete: no bytes for readers, the lease still held.
	if st, _ := s.File("/_tmp/part-7"); !st.UnderConstruction || st.Length != 0 {
		t.Fatalf("file = %+v; want under construction with nothing visible", st)
	}
	if fi, err := other.Stat("/_tmp/part-7"); err != nil || fi.Size() != 0 {
		t.Fatalf("other client Stat = %v, %v; want size 0", fi, err)
	}
	if got := readFile(t, other, "/_tmp/part-7"); len(got) != 0 {
		t.Fatalf("other client read %q from an incomplete file", got)
	}
	if _, err := other.Append("/_tmp/part-7"); remoteException(err) != ExcAlreadyBeingCreated {
		t.Fatalf("Append to the incomplete file: got %v, want %s", err, ExcAlreadyBeingCreated)
	}
	// Once complete is accepted again the committed block completes the file.
	refuse.Remove()
	if err := w.Close(); err != nil {
		t.Fatalf("Close after the refusal ended: %v", err)
	}
	mustEqualBytes(t, "completed file", readFile(t, other, "/_tmp/part-7"), []byte("uncommitted rows"))
}

func TestUnknownMethodIsReported(t *testing.T) {
	s := Start(t)
	raw := dialRaw(t, s.NameNodeAddr())
	err := raw.call("getStoragePolicies", &pb.GetServerDefaultsRequestProto{}, &pb.GetServerDefaultsResponseProto{})
	re, ok := err.(*rawError)
	if !ok || re.code != pb.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD || re.class != excNoSuchMethod {
		t.Fatalf("unknown method: got %v, want ERROR_NO_SUCH_METHOD / %s", err, excNoSuchMethod)
	}
	// The connection stays usable.
	var d pb.GetServerDefaultsResponseProto
	if err := raw.call("getServerDefaults", &pb.GetServerDefaultsRequestProto{}, &d); err != nil || d.GetServerDefaults().GetBlockSize() != DefaultBlockSize {
		t.Fatalf("getServerDefaults after an unknown method = %v, %v", d.GetServerDefaults(), err)
	}
}
