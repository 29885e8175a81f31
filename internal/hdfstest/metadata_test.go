package hdfstest

import (
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

func TestOwnerTimesTruncateAppend(t *testing.T) {
	const bs = 64 << 10
	s := Start(t, WithBlockSize(bs))
	c := newClient(t, s, 10*time.Second)
	data := randomBytes(8, 3*bs+100)
	writeFile(t, c, "/f", data)

	if err := c.Chown("/f", "etl", "analytics"); err != nil {
		t.Fatalf("Chown: %v", err)
	}
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := c.Chtimes("/f", mtime.Add(time.Hour), mtime); err != nil {
		t.Fatalf("Chtimes: %v", err)
	}
	fi, err := c.Stat("/f")
	if err != nil {
		t.Fatal(err)
	}
	hf := fi.(*hdfs.FileInfo)
	if hf.Owner() != "etl" || hf.OwnerGroup() != "analytics" || !fi.ModTime().Equal(mtime) || !hf.AccessTime().Equal(mtime.Add(time.Hour)) {
		t.Fatalf("after Chown/Chtimes: owner %s group %s mtime %v atime %v", hf.Owner(), hf.OwnerGroup(), fi.ModTime(), hf.AccessTime())
	}

	// Truncate into the middle of the second block, then to a boundary.
	for _, size := range []int64{bs + 1000, bs} {
		ok, err := c.Truncate("/f", size)
		if err != nil || !ok {
			t.Fatalf("Truncate(%d) = %v, %v", size, ok, err)
		}
		mustEqualBytes(t, "truncated file", readFile(t, c, "/f"), data[:size])
	}
	if _, err := c.Truncate("/f", 10*bs); err == nil {
		t.Fatal("Truncate to a larger size succeeded")
	}

	// The last block is now exactly full: append starts a new block.
	a, err := c.Append("/f")
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if _, err := a.Write(data[bs : 2*bs+5]); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Append Close: %v", err)
	}
	mustEqualBytes(t, "appended file", readFile(t, c, "/f"), data[:2*bs+5])
	if st, _ := s.File("/f"); len(st.BlockLengths) != 3 || st.BlockLengths[2] != 5 {
		t.Fatalf("blocks after append = %v, want [%d %d 5]", st.BlockLengths, bs, bs)
	}
}
