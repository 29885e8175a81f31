package hdfstest

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

// TestCloseLeavesNoGoroutines checks Close ends every server goroutine,
// including one holding a hung call and one in the middle of a block write.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: []string{s.NameNodeAddr()}, User: "test"})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, c, "/f", randomBytes(1, 100_000))
	mustEqualBytes(t, "/f", readFile(t, c, "/f"), randomBytes(1, 100_000))
	w, err := c.Create("/open")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("in flight")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	s.HangCall("getFileInfo", 1)
	go c.Stat("/hung")
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.Close()
	// The colinmarc writer left open keeps goroutines of its own; only the
	// server's count here.
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		left := 0
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "internal/hdfstest.(*") {
				left++
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d server goroutines still running after Close:\n%s", left, stacks)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
