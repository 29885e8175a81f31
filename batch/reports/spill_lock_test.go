//go:build unix

package reports

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSpillDirOfKilledRunRemoved kills a process with a spill directory
// (kill -9: nothing of its own cleans up) and checks that the next run's
// spiller removes that directory and one left by a version without locks
// (over an hour old), and leaves a running spiller's directory and a
// lock-less one young enough to be in the making.
func TestSpillDirOfKilledRunRemoved(t *testing.T) {
	if os.Getenv("LAMBDALOG_SPILL_CHILD") != "" {
		return // the child's part is TestSpillChild
	}
	parent := t.TempDir()

	// A run in progress: its directory must survive the sweeps below.
	live := newSpiller(parent, 1)
	f, err := live.newFile()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer live.close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSpillChild$")
	cmd.Env = append(os.Environ(), "LAMBDALOG_SPILL_CHILD="+parent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var dead string
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "spill dir "); ok {
			dead = d
			break
		}
	}
	if dead == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child printed no spill dir")
	}
	cmd.Process.Kill() // SIGKILL
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dead, spillLockName)); err != nil {
		t.Fatalf("killed run's directory: %v", err)
	}

	old := filepath.Join(parent, spillDirPrefix+"old")
	young := filepath.Join(parent, spillDirPrefix+"young")
	for _, d := range []string{old, young} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "state-1.bin"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}

	next := newSpiller(parent, 1)
	if next.staleErr != nil {
		t.Fatal(next.staleErr)
	}
	slices.Sort(next.stale)
	want := []string{dead, old}
	slices.Sort(want)
	if !slices.Equal(next.stale, want) {
		t.Errorf("removed %v, want %v", next.stale, want)
	}
	for _, d := range want {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", d, err)
		}
	}
	for _, d := range []string{live.dir, young} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	if err := live.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live.dir); live.dir != "" || err == nil {
		t.Errorf("close left the live run's directory %q", live.dir)
	}
}

// TestSpillChild is the killed process of TestSpillDirOfKilledRunRemoved.
func TestSpillChild(t *testing.T) {
	parent := os.Getenv("LAMBDALOG_SPILL_CHILD")
	if parent == "" {
		return // only TestSpillDirOfKilledRunRemoved runs it, as a child
	}
	s := newSpiller(parent, 1)
	f, err := s.newFile()
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("state")
	f.Close()
	os.Stdout.WriteString("spill dir " + s.dir + "\n")
	time.Sleep(time.Minute) // killed before
}
