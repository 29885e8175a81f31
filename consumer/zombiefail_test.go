package consumer

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// failTemp fails creating any file under prefix, as HDFS does for a
// zombie whose temporary directory the new owner's claim removed while
// the zombie was writing into it.
type failTemp struct {
	storage.FS
	prefix string
}

func (f failTemp) Create(ctx context.Context, name string) (storage.File, error) {
	if strings.HasPrefix(name, f.prefix) {
		return nil, errors.New("complete call failed (java.io.IOException)")
	}
	return f.FS.Create(ctx, name)
}

// TestZombieWhoseWriteFailsIsFenced: a consumer that lost a partition
// (its writer still buffered) and whose commit then fails on a file write,
// before the publish that would report the fencing, drops the partition
// as fenced instead of failing the whole consumer (which would exit 1 on a
// clean stop, as the soak saw after HDFS faults and a rebalance); the
// dataset stays exact.
func TestZombieWhoseWriteFailsIsFenced(t *testing.T) {
	backends(t, func(t *testing.T, fsys storage.FS) {
		ctx := context.Background()
		log := NewLog(fsys, "auth", 0)
		claim, err := log.Claim(ctx, "epoch-zombie")
		if err != nil {
			t.Fatal(err)
		}
		zfs := failTemp{FS: fsys, prefix: log.tmp("epoch-zombie")}
		c, err := New(Options{FS: zfs, Group: "g", Sources: []Source{{"auth", "sshd"}}})
		if err != nil {
			t.Fatal(err)
		}
		zombie := NewPartitionWriter(zfs, NewLog(zfs, "auth", 0), claim, WriterOptions{})
		k := tp{"auth", 0}
		c.writers[k] = zombie
		for o := int64(0); o < 10; o++ {
			zombie.Add(authRecord(o, base), o, 10)
		}

		// While the partition is still ours, the same failure is the
		// consumer's error (nothing else can resume the partition).
		if err := c.commit(ctx, k, zombie); err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("owner's failed commit: %v, want the write error", err)
		}

		// A new owner claims and commits; the zombie's retry fails the
		// same way and is now recognised as fenced.
		if err := writeCommits(ctx, t, fsys, nil, 0, 20, 10); err != nil {
			t.Fatal(err)
		}
		if err := c.commit(ctx, k, zombie); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie commit: %v, want ErrFenced", err)
		}
		if _, still := c.writers[k]; still {
			t.Error("the fenced partition's writer was kept")
		}
		mustVerify(t, fsys, 20)
	})
}
