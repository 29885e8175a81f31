package hdfstest

import (
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

func TestRestartWithDirKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	s1, err := New(WithDir(dir), WithBlockSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	c1, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{s1.NameNodeAddr()}, User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	big := randomBytes(5, 3<<20+777)
	if err := c1.MkdirAll("/master/2024/05", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, c1, "/master/2024/05/part-0.parquet", big)
	writeFile(t, c1, "/master/_SUCCESS", []byte("ok"))
	if err := c1.Rename("/master/_SUCCESS", "/master/_DONE"); err != nil {
		t.Fatal(err)
	}
	// A file left under construction survives as such.
	w, err := c1.Create("/master/open")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("pending")); err != nil {
		t.Fatal(err)
	}
	c1.Close()
	if err := s1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s2 := Start(t, WithDir(dir))
	c2 := newClient(t, s2, 10*time.Second)
	mustEqualBytes(t, "multi-block file after restart", readFile(t, c2, "/master/2024/05/part-0.parquet"), big)
	mustEqualBytes(t, "renamed file after restart", readFile(t, c2, "/master/_DONE"), []byte("ok"))
	names, err := c2.ReadDir("/master")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 || names[0].Name() != "2024" || names[1].Name() != "_DONE" || names[2].Name() != "open" {
		t.Fatalf("ReadDir(/master) after restart = %v", names)
	}
	if st, _ := s2.File("/master/open"); !st.UnderConstruction {
		t.Fatalf("the open file is %+v after restart; want still under construction", st)
	}
	// New blocks and inodes do not collide with the old ones.
	writeFile(t, c2, "/master/new", []byte("after restart"))
	mustEqualBytes(t, "new file", readFile(t, c2, "/master/new"), []byte("after restart"))
	mustEqualBytes(t, "old file still intact", readFile(t, c2, "/master/2024/05/part-0.parquet"), big)
}
