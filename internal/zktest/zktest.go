// Package zktest gives tests a private ZooKeeper server (standalone, in a
// temporary directory, on a free loopback port), which ClickHouse needs for
// ReplicatedMergeTree tables and ON CLUSTER DDL. It runs Debian's
// zookeeper package (apt-get install -y zookeeper; it needs a JRE) with
// ZooKeeperServerMain, the standalone entry point, so no zoo.cfg or system
// service is involved.
//
// When Java or the ZooKeeper jar is missing the test is skipped, except
// under CI=true, where it fails.
package zktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultClassPath is where Debian's zookeeper package puts the jar (its
// manifest names the dependencies).
const DefaultClassPath = "/usr/share/java/zookeeper.jar"

// ErrNotInstalled means Java or the ZooKeeper jar was not found.
var ErrNotInstalled = errors.New("zktest: ZooKeeper not installed; install it with 'apt-get install -y zookeeper' (Debian, as root; it pulls a JRE), or set LAMBDALOG_ZOOKEEPER_CLASSPATH")

// Server is a running ZooKeeper.
type Server struct {
	cmd  *exec.Cmd
	port int
	dir  string
	done chan struct{}
}

// Port is the client port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Addr is host:port of the client port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// ClickHouseConfig is the <zookeeper> element of a ClickHouse server config.
func (s *Server) ClickHouseConfig() string {
	return fmt.Sprintf("<zookeeper><node><host>127.0.0.1</host><port>%d</port></node><session_timeout_ms>30000</session_timeout_ms></zookeeper>", s.port)
}

// Start starts a server for this test, stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start(t.TempDir())
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("zktest: CI=true and ZooKeeper is required: %v", err)
		}
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(s.dir, "zookeeper.log")); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("zookeeper log tail:\n%s", strings.Join(lines[max(0, len(lines)-20):], "\n"))
			}
		}
		s.Stop()
	})
	return s
}

func start(dir string) (*Server, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNotInstalled
	}
	cp := os.Getenv("LAMBDALOG_ZOOKEEPER_CLASSPATH")
	if cp == "" {
		cp = DefaultClassPath
	}
	if _, err := os.Stat(strings.Split(cp, ":")[0]); err != nil {
		return nil, ErrNotInstalled
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("zktest: free port: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	logf, err := os.Create(filepath.Join(dir, "zookeeper.log"))
	if err != nil {
		return nil, fmt.Errorf("zktest: %w", err)
	}
	// A small heap: the test data is a few hundred znodes. The admin
	// server would take port 8080; ZooKeeperServerMain's arguments are
	// port, data directory and tick time.
	cmd := exec.Command(java, "-Xmx256m", "-XX:+UseSerialGC", "-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.4lw.commands.whitelist=srvr,ruok", "-cp", cp,
		"org.apache.zookeeper.server.ZooKeeperServerMain", strconv.Itoa(port), filepath.Join(dir, "data"), "500")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("zktest: start java: %w", err)
	}
	s := &Server{cmd: cmd, port: port, dir: dir, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if s.ready() {
			return s, nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(filepath.Join(dir, "zookeeper.log"))
			return nil, fmt.Errorf("zktest: ZooKeeper exited during start:\n%s", b)
		case <-ctx.Done():
			s.Stop()
			return nil, fmt.Errorf("zktest: ZooKeeper did not serve on %s within 60s", s.Addr())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ready asks the server's state with the srvr four-letter command: it
// answers "Mode: standalone" once it serves clients.
func (s *Server) ready() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	buf := make([]byte, 4096)
	var got []byte
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	return strings.Contains(string(got), "Mode: standalone")
}

// Stop kills the server (a test's ZooKeeper keeps nothing worth a clean
// shutdown) and waits for it.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}
