package hdfstest

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

func TestClientRoundTrip(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)

	if err := c.MkdirAll("/data/logs", 0o755); err != nil {
		t.Fatalf("MkdirAll: %v", err)
	}
	if err := c.Mkdir("/data/logs", 0o755); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Mkdir of an existing dir: got %v, want os.ErrExist", err)
	}
	want := []byte("2024-05-01T10:00:00Z sshd[42]: Failed password for root from 10.0.0.7\n")
	writeFile(t, c, "/data/logs/auth.log", want)
	writeFile(t, c, "/data/logs/empty.log", nil)

	fi, err := c.Stat("/data/logs/auth.log")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if fi.Name() != "auth.log" || fi.Size() != int64(len(want)) || fi.IsDir() || fi.Mode().Perm() != 0o644 {
		t.Fatalf("Stat = name %q size %d dir %v mode %v; want auth.log %d false -rw-r--r--", fi.Name(), fi.Size(), fi.IsDir(), fi.Mode(), len(want))
	}
	if fs := fi.(*hdfs.FileInfo); fs.Owner() != "test" {
		t.Fatalf("owner = %q, want the client's user %q", fs.Owner(), "test")
	}
	if dir, err := c.Stat("/data"); err != nil || !dir.IsDir() {
		t.Fatalf("Stat(/data) = %v, %v; want a directory", dir, err)
	}
	if _, err := c.Stat("/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Stat of a missing file: got %v, want os.ErrNotExist", err)
	}

	mustEqualBytes(t, "auth.log", readFile(t, c, "/data/logs/auth.log"), want)
	if got := readFile(t, c, "/data/logs/empty.log"); len(got) != 0 {
		t.Fatalf("empty.log has %d bytes", len(got))
	}

	infos, err := c.ReadDir("/data/logs")
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	if len(names) != 2 || names[0] != "auth.log" || names[1] != "empty.log" {
		t.Fatalf("ReadDir = %v, want [auth.log empty.log]", names)
	}
	if _, err := c.ReadDir("/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadDir of a missing dir: got %v, want os.ErrNotExist", err)
	}

	if err := c.Chmod("/data/logs/auth.log", 0o600); err != nil {
		t.Fatalf("Chmod: %v", err)
	}
	if fi, _ := c.Stat("/data/logs/auth.log"); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after Chmod = %v", fi.Mode())
	}
	cs, err := c.GetContentSummary("/data")
	if err != nil {
		t.Fatalf("GetContentSummary: %v", err)
	}
	if cs.Size() != int64(len(want)) || cs.FileCount() != 2 || cs.DirectoryCount() != 2 {
		t.Fatalf("content summary = size %d files %d dirs %d; want %d 2 2", cs.Size(), cs.FileCount(), cs.DirectoryCount(), len(want))
	}
	st, err := c.StatFs()
	if err != nil {
		t.Fatalf("StatFs: %v", err)
	}
	if st.Used != uint64(len(want)) {
		t.Fatalf("StatFs used = %d, want %d", st.Used, len(want))
	}
}

func TestMultiBlockFile(t *testing.T) {
	const blockSize = 1 << 20
	s := Start(t, WithBlockSize(blockSize))
	c := newClient(t, s, 10*time.Second)
	want := randomBytes(1, 5_000_000)
	writeFile(t, c, "/big.bin", want)

	st, ok := s.File("/big.bin")
	if !ok || st.UnderConstruction || st.Length != int64(len(want)) {
		t.Fatalf("server file state = %+v, %v; want complete, %d bytes", st, ok, len(want))
	}
	wantBlocks := []int64{blockSize, blockSize, blockSize, blockSize, 5_000_000 - 4*blockSize}
	if len(st.BlockLengths) != len(wantBlocks) {
		t.Fatalf("blocks = %v, want %v", st.BlockLengths, wantBlocks)
	}
	for i := range wantBlocks {
		if st.BlockLengths[i] != wantBlocks[i] {
			t.Fatalf("blocks = %v, want %v", st.BlockLengths, wantBlocks)
		}
	}
	mustEqualBytes(t, "big.bin", readFile(t, c, "/big.bin"), want)

	f, err := c.Open("/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	// Reads straddling each block boundary, then random ones, including
	// offsets in the middle of a 512-byte checksum chunk.
	var offs []int64
	for b := int64(1); b < 5; b++ {
		offs = append(offs, b*blockSize-1000, b*blockSize-1, b*blockSize)
	}
	for i := 0; i < 30; i++ {
		offs = append(offs, rng.Int64N(int64(len(want))-1))
	}
	for _, off := range offs {
		n := min(1+rng.IntN(300_000), len(want)-int(off))
		buf := make([]byte, n)
		got, err := f.ReadAt(buf, off)
		if err != nil && !(err == io.EOF && got == n) {
			t.Fatalf("ReadAt(%d, %d): %d, %v", off, n, got, err)
		}
		mustEqualBytes(t, "ReadAt", buf[:got], want[off:off+int64(n)])
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, int64(len(want))-4); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt past the end = %d, %v; want 4, EOF", n, err)
	}
	mustEqualBytes(t, "tail", buf[:4], want[len(want)-4:])
}

func TestCreateExistingFails(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	writeFile(t, c, "/f", []byte("first"))

	if _, err := c.Create("/f"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing file: got %v, want os.ErrExist", err)
	}
	// CreateFile skips the client's own existence check, so this is the
	// NameNode refusing: create without OVERWRITE.
	_, err := c.CreateFile("/f", 1, 1<<20, 0o644)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("CreateFile over an existing file: got %v, want os.ErrExist", err)
	}
	if ex := remoteException(err); ex != "" && ex != ExcFileAlreadyExists {
		t.Fatalf("exception = %q", ex)
	}
	if _, err := c.CreateFile("/missing/f", 1, 1<<20, 0o644); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("create without the parent dir: got %v, want os.ErrNotExist", err)
	}
	mustEqualBytes(t, "f", readFile(t, c, "/f"), []byte("first"))
}

func TestRenameSemantics(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	writeFile(t, c, "/a", []byte("A"))
	writeFile(t, c, "/b", []byte("B"))
	if err := c.Mkdir("/dir", 0o755); err != nil {
		t.Fatal(err)
	}

	if err := c.Rename("/a", "/dir/a2"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if _, err := c.Stat("/a"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("source still there after rename: %v", err)
	}
	mustEqualBytes(t, "/dir/a2", readFile(t, c, "/dir/a2"), []byte("A"))
	if err := c.Rename("/nope", "/x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Rename of a missing file: got %v, want os.ErrNotExist", err)
	}

	raw := dialRaw(t, s.NameNodeAddr())
	// rename2 without OVERWRITE onto an existing file: the commit protocol's
	// guard. colinmarc's Rename always sends OVERWRITE, so use raw IPC.
	err := raw.call("rename2", &pb.Rename2RequestProto{Src: proto.String("/dir/a2"), Dst: proto.String("/b"), OverwriteDest: proto.Bool(false)}, &pb.Rename2ResponseProto{})
	if re, ok := err.(*rawError); !ok || re.class != ExcFileAlreadyExists {
		t.Fatalf("rename2 onto an existing file without OVERWRITE: got %v, want %s", err, ExcFileAlreadyExists)
	}
	mustEqualBytes(t, "/b untouched", readFile(t, c, "/b"), []byte("B"))
	// The old rename answers false instead.
	var old pb.RenameResponseProto
	if err := raw.call("rename", &pb.RenameRequestProto{Src: proto.String("/dir/a2"), Dst: proto.String("/b")}, &old); err != nil || old.GetResult() {
		t.Fatalf("old rename onto an existing file = %v, %v; want false", old.GetResult(), err)
	}
	// ...and moves into an existing directory.
	if err := raw.call("rename", &pb.RenameRequestProto{Src: proto.String("/b"), Dst: proto.String("/dir")}, &old); err != nil || !old.GetResult() {
		t.Fatalf("old rename into a dir = %v, %v; want true", old.GetResult(), err)
	}
	mustEqualBytes(t, "/dir/b", readFile(t, c, "/dir/b"), []byte("B"))

	// With OVERWRITE (colinmarc's Rename) the destination is replaced.
	if err := c.Rename("/dir/a2", "/dir/b"); err != nil {
		t.Fatalf("Rename with overwrite: %v", err)
	}
	mustEqualBytes(t, "/dir/b replaced", readFile(t, c, "/dir/b"), []byte("A"))
	// A directory cannot replace a file, nor be moved under itself.
	if err := c.Mkdir("/dir/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("/dir/sub", "/dir/b"); err == nil {
		t.Fatal("renaming a directory over a file succeeded")
	}
	if err := c.Rename("/dir", "/dir/sub/x"); err == nil {
		t.Fatal("renaming a directory under itself succeeded")
	}
}

func TestRemove(t *testing.T) {
	s := Start(t)
	c := newClient(t, s, 10*time.Second)
	if err := c.MkdirAll("/d/x", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, c, "/d/x/1", []byte("one"))
	writeFile(t, c, "/d/2", []byte("two"))
	if err := c.Remove("/d"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("Remove of a non-empty dir: got %v, want ENOTEMPTY", err)
	}
	if err := c.Remove("/d/2"); err != nil {
		t.Fatalf("Remove file: %v", err)
	}
	if _, err := c.Stat("/d/2"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed file still there: %v", err)
	}
	if err := c.RemoveAll("/d"); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	if _, err := c.Stat("/d/x/1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file under a removed dir still there: %v", err)
	}
	if err := c.Remove("/d"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Remove of a missing path: got %v, want os.ErrNotExist", err)
	}
	if st, err := c.StatFs(); err != nil || st.Used != 0 {
		t.Fatalf("StatFs after removing everything = %+v, %v; want 0 bytes used", st, err)
	}
}

func TestReaddirPartialListings(t *testing.T) {
	s := Start(t, WithListingLimit(7))
	c := newClient(t, s, 10*time.Second)
	if err := c.Mkdir("/many", 0o755); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 25; i++ {
		name := string(rune('a'+i%26)) + "-" + string(rune('0'+i/10)) + string(rune('0'+i%10))
		want = append(want, name)
		writeFile(t, c, "/many/"+name, []byte(name))
	}
	sort.Strings(want)
	infos, err := c.ReadDir("/many")
	if err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if len(infos) != len(want) {
		t.Fatalf("ReadDir returned %d entries, want %d", len(infos), len(want))
	}
	for i, fi := range infos {
		if fi.Name() != want[i] || fi.Size() != int64(len(want[i])) {
			t.Fatalf("entry %d = %s (%d bytes), want %s", i, fi.Name(), fi.Size(), want[i])
		}
	}
	f, err := c.Open("/many")
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.Readdirnames(10)
	if err != nil || len(first) != 10 || first[9] != want[9] {
		t.Fatalf("Readdirnames(10) = %v, %v", first, err)
	}
	rest, err := f.Readdirnames(100)
	if err != nil || len(rest) != 15 || rest[0] != want[10] {
		t.Fatalf("Readdirnames(100) after 10 = %v, %v", rest, err)
	}
}

func TestListingWithLocations(t *testing.T) {
	s := Start(t, WithBlockSize(64<<10))
	c := newClient(t, s, 10*time.Second)
	if err := c.Mkdir("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, c, "/d/f", randomBytes(11, 150_000))
	raw := dialRaw(t, s.NameNodeAddr())
	var resp pb.GetListingResponseProto
	if err := raw.call("getListing", &pb.GetListingRequestProto{Src: proto.String("/d"), StartAfter: []byte{}, NeedLocation: proto.Bool(true)}, &resp); err != nil {
		t.Fatal(err)
	}
	list := resp.GetDirList().GetPartialListing()
	if len(list) != 1 || string(list[0].GetPath()) != "f" {
		t.Fatalf("listing = %v", list)
	}
	blocks := list[0].GetLocations().GetBlocks()
	if len(blocks) != 3 || blocks[2].GetOffset() != 2*(64<<10) || blocks[2].GetB().GetNumBytes() != 150_000-2*(64<<10) {
		t.Fatalf("located blocks = %v; want 3 blocks, the last at %d", blocks, 2*(64<<10))
	}
	if addr := blocks[0].GetLocs()[0].GetId(); fmt.Sprintf("%s:%d", addr.GetIpAddr(), addr.GetXferPort()) != s.DataNodeAddr() {
		t.Fatalf("block location %v, want the DataNode at %s", addr, s.DataNodeAddr())
	}
}
