// Package chtest gives tests a private ClickHouse server (internal/chserver)
// on free ports with a temporary data dir, cleaned up with the test and with
// the server's log printed when the test fails.
//
// When no server binary is installed the test is skipped, except under
// CI=true, where a missing component is a failure.
package chtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chserver"
)

// Start starts a server for this test only.
func Start(t testing.TB) *chserver.Server {
	t.Helper()
	return start(t, t.TempDir(), chserver.Options{})
}

func start(t testing.TB, dir string, o chserver.Options) *chserver.Server {
	t.Helper()
	o.Dir = dir
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, o)
	if err != nil {
		missing(t, err)
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clickhouse log tail:\n%s", srv.LogTail(40))
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(stopCtx); err != nil {
			t.Errorf("chtest: stop: %v", err)
		}
	})
	return srv
}

// missing skips (or, under CI=true, fails) a test when ClickHouse is not
// installed.
func missing(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, chserver.ErrNotInstalled) {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chtest: CI=true and ClickHouse is required: %v", err)
	}
	t.Skipf("chtest: %v", err)
}

// shared is one server for a whole test binary (startup costs seconds);
// Main stops it.
var shared struct {
	once sync.Once
	srv  *chserver.Server
	dir  string
	err  error
}

// Main runs a package's tests and then stops the shared server, if any
// test started one. Use it from TestMain: os.Exit(chtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = shared.srv.Stop(ctx)
		cancel()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return code
}

// Shared returns the test binary's shared server, starting it on first use.
// Tests isolate themselves with NewDatabase. The package must call Main
// from TestMain so the server is stopped.
func Shared(t testing.TB) *chserver.Server {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "chtest-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		shared.srv, shared.err = chserver.Start(ctx, chserver.Options{Dir: shared.dir})
	})
	if shared.err != nil {
		missing(t, shared.err)
		t.Fatalf("chtest: %v", shared.err)
	}
	select {
	case <-shared.srv.Done():
		// An earlier test stopped or crashed it; say so instead of letting
		// this test fail on a refused connection.
		t.Fatalf("chtest: the shared ClickHouse server has exited; its log:\n%s", shared.srv.LogTail(40))
	default:
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clickhouse log tail:\n%s", shared.srv.LogTail(40))
		}
	})
	return shared.srv
}

var dbSeq atomic.Int64

// NewDatabase creates a database unique to this test on srv, dropped when
// the test ends, and returns its name.
func NewDatabase(t testing.TB, srv *chserver.Server) string {
	t.Helper()
	name := fmt.Sprintf("t_%s_%d_%d", sanitize(t.Name()), os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := srv.Query(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := srv.Query(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("chtest: drop %s: %v", name, err)
		}
	})
	return name
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}
