package chserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chserver"
)

// requireBinary skips a test without a ClickHouse server binary, except
// under CI=true, where a missing component is a failure. (chtest does the
// same for other packages; it cannot be used here without an import of
// chserver by itself.)
func requireBinary(t *testing.T) {
	t.Helper()
	if _, err := chserver.FindBinary(nil); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and ClickHouse is required: %v", err)
		}
		t.Skip(err)
	}
}

func start(t *testing.T, o chserver.Options) *chserver.Server {
	t.Helper()
	requireBinary(t)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("clickhouse log tail:\n%s", srv.LogTail(40))
		}
		_ = srv.Stop(context.Background())
	})
	return srv
}

// gone reports whether no process of the group led by pid is left.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH) && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestStartQueryStop(t *testing.T) {
	srv := start(t, chserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	v, err := srv.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
		t.Errorf("Version = %q", v)
	}
	if got, err := srv.Query(ctx, "SELECT sum(number) FROM numbers(100)"); err != nil || got != "4950\n" {
		t.Errorf("Query = %q, %v", got, err)
	}
	if _, err := srv.Query(ctx, "SELECT nonsense("); err == nil || !strings.Contains(err.Error(), "Syntax error") {
		t.Errorf("bad query: err = %v, want the server's syntax error", err)
	}
	// Only loopback, on the ports it reports.
	for _, addr := range []string{srv.TCPAddr(), srv.HTTPAddr()} {
		host, port, _ := net.SplitHostPort(addr)
		if host != "127.0.0.1" {
			t.Errorf("listening on %s, want 127.0.0.1", addr)
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Errorf("dial %s: %v", addr, err)
		} else {
			c.Close()
		}
		if p, _ := strconv.Atoi(port); p == 9000 || p == 8123 {
			t.Errorf("port %d is a system server's default; want a free one", p)
		}
	}
	if want := "clickhouse://default:@" + srv.TCPAddr() + "/lambdalog"; srv.DSN("lambdalog") != want {
		t.Errorf("DSN = %q, want %q", srv.DSN("lambdalog"), want)
	}
	if !strings.HasSuffix(srv.DSN(""), "/default") {
		t.Errorf("DSN(\"\") = %q", srv.DSN(""))
	}
	// Everything lives in Dir: no file outside it is needed or written.
	for _, sub := range []string{"config.xml", "users.xml", "data", "log"} {
		if _, err := os.Stat(filepath.Join(srv.Dir(), sub)); err != nil {
			t.Error(err)
		}
	}

	pid := srv.Pid()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if !gone(pid) {
		t.Errorf("a process of group %d is still running after Stop", pid)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := srv.Query(ctx, "SELECT 1"); err == nil {
		t.Error("query after Stop succeeded")
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, chserver.Options{Dir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, q := range []string{
		"CREATE DATABASE keep",
		"CREATE TABLE keep.t (x UInt64, s String) ENGINE = MergeTree ORDER BY x",
		"INSERT INTO keep.t (x, s) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
	} {
		if _, err := srv.Query(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	srv2 := start(t, chserver.Options{Dir: dir})
	got, err := srv2.Query(ctx, "SELECT sum(x), groupArray(s) FROM (SELECT * FROM keep.t ORDER BY x)")
	if err != nil {
		t.Fatal(err)
	}
	if got != "6\t['a','b','c']\n" {
		t.Errorf("after restart = %q, want 6 and [a b c]", got)
	}
}

// TestSameDirTwice: a second server on a Dir in use fails instead of
// sharing the data files.
func TestSameDirTwice(t *testing.T) {
	srv := start(t, chserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	second, err := chserver.Start(ctx, chserver.Options{Dir: srv.Dir(), StartTimeout: 20 * time.Second})
	if err == nil {
		second.Stop(ctx)
		t.Fatal("a second server started on a directory in use")
	}
	t.Logf("second start: %v", err)
	if v, err := srv.Version(ctx); err != nil || v == "" {
		t.Errorf("the first server stopped answering: %v", err)
	}
}

func TestPortInUse(t *testing.T) {
	requireBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir(), TCPPort: port, StartTimeout: 20 * time.Second})
	if err == nil {
		srv.Stop(ctx)
		t.Fatalf("started on port %d, which is taken", port)
	}
	if !strings.Contains(err.Error(), "clickhouse log tail") || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("err = %v\nwant the log tail naming the taken address", err)
	}
}

func TestStartCancelled(t *testing.T) {
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	dir := t.TempDir()
	_, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	// The half-started server was stopped: the Dir is free for the next one.
	srv := start(t, chserver.Options{Dir: dir})
	if _, err := srv.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMissingBinary(t *testing.T) {
	none := func(string) (string, error) { return "", exec.ErrNotFound }
	_, err := chserver.Start(context.Background(), chserver.Options{Dir: t.TempDir(), LookPath: none})
	if !errors.Is(err, chserver.ErrNotInstalled) {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
	for _, s := range []string{"clickhouse-server not found in PATH", "apt-get install -y clickhouse-server", "https://clickhouse.com/docs/install"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	_, err = chserver.Start(context.Background(), chserver.Options{Dir: t.TempDir(), Binary: "/nonexistent/clickhouse-server"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/clickhouse-server") {
		t.Errorf("missing explicit binary: err = %v", err)
	}
	if _, err := chserver.Start(context.Background(), chserver.Options{}); err == nil {
		t.Error("Start without Dir succeeded")
	}
}

func TestFindBinary(t *testing.T) {
	single := func(name string) (string, error) {
		if name == "clickhouse" {
			return "/opt/ch/clickhouse", nil
		}
		return "", exec.ErrNotFound
	}
	if argv, err := chserver.FindBinary(single); err != nil || strings.Join(argv, " ") != "/opt/ch/clickhouse server" {
		t.Errorf("single binary: %q, %v", argv, err)
	}
	both := func(name string) (string, error) { return "/usr/sbin/" + name, nil }
	if argv, err := chserver.FindBinary(both); err != nil || strings.Join(argv, " ") != "/usr/sbin/clickhouse-server" {
		t.Errorf("both: %q, %v", argv, err)
	}
}

// TestParentDeath: a server whose parent dies without Stop is killed too.
func TestParentDeath(t *testing.T) {
	if os.Getenv("CHSERVER_ORPHAN_DIR") != "" {
		srv, err := chserver.Start(context.Background(), chserver.Options{Dir: os.Getenv("CHSERVER_ORPHAN_DIR")})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		fmt.Println("PID", srv.Pid())
		os.Exit(0) // no Stop
	}
	requireBinary(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestParentDeath$")
	cmd.Env = append(os.Environ(), "CHSERVER_ORPHAN_DIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var pid int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "PID "); ok {
			pid, _ = strconv.Atoi(p)
		}
	}
	if pid == 0 {
		t.Fatalf("child printed no pid:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !gone(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(-pid, syscall.SIGKILL)
			t.Fatalf("server %d still runs 10 s after its parent died", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStopKillsAfterGrace: a server busy with a query that never ends does
// not exit on SIGTERM (it waits for running queries); Stop kills it when
// the context ends and still leaves nothing running.
func TestStopKillsAfterGrace(t *testing.T) {
	srv := start(t, chserver.Options{})
	qctx, qcancel := context.WithCancel(context.Background())
	defer qcancel()
	go srv.Query(qctx, "SELECT count() FROM system.numbers") // endless
	// Wait until the server runs it.
	for i := 0; ; i++ {
		n, err := srv.Query(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE '%system.numbers%' AND query NOT LIKE '%processes%'")
		if err == nil && n == "1\n" {
			break
		}
		if i == 100 {
			t.Fatalf("the endless query never started: %q %v", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid := srv.Pid()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	began := time.Now()
	err := srv.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop = %v, want the kill reported", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("Stop took %v with a 2 s context", d)
	}
	if !gone(pid) {
		t.Errorf("a process of group %d is still running after Stop", pid)
	}
}

// BenchmarkStartStop is the cost of one private server from a fresh Dir to
// stopped: why test packages share one (chtest.Shared).
func BenchmarkStartStop(b *testing.B) {
	if _, err := chserver.FindBinary(nil); err != nil {
		b.Skip(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		srv, err := chserver.Start(ctx, chserver.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		if err := srv.Stop(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/server")
}
