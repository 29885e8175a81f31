// Package chserver runs a private ClickHouse server as a child process: its
// own config, data directory and free loopback ports, so `lambdalog dev` and
// tests never touch a system-wide installation or each other.
//
// It supports Debian's clickhouse-server 18.16 and current single-binary
// releases (`clickhouse server`); the config it writes uses only settings
// both understand, and nothing is read from /etc/clickhouse-server.
//
// Observed with 18.16.1: it runs as root without complaint and without
// changing file owners; a second server on a Dir in use exits at once
// ("Cannot lock file .../data/status"); a taken port makes it exit with
// "Address already in use" in error.log (Start picks new free ports and
// retries); on SIGTERM it waits for running queries, hence Stop's SIGKILL
// after a grace period.
package chserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled means no ClickHouse server binary was found.
var ErrNotInstalled = errors.New("chserver: clickhouse-server not found in PATH; install it with 'apt-get install -y clickhouse-server' (Debian, as root), or see https://clickhouse.com/docs/install")

// Options configure a server.
type Options struct {
	// Dir holds the config, data and logs; reused across restarts.
	Dir string
	// Binary is the server executable; default: clickhouse-server, else
	// `clickhouse server` from PATH.
	Binary string
	// TCPPort and HTTPPort; 0 picks free ports.
	TCPPort, HTTPPort int
	// StartTimeout bounds the wait for the server to answer (default 60s).
	StartTimeout time.Duration
	// Logger receives start and stop events; default: discard.
	Logger *slog.Logger
	// LookPath finds executables; tests replace it. Default exec.LookPath.
	LookPath func(string) (string, error)
	// ExtraConfig is XML added inside the server config's root element,
	// for servers that form a cluster in tests: remote_servers, zookeeper,
	// distributed_ddl, macros. Empty by default.
	ExtraConfig string
}

// Server is a running private ClickHouse server.
type Server struct {
	opts     Options
	cmd      *exec.Cmd
	tcpPort  int
	httpPort int
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// FindBinary returns the command line that starts a ClickHouse server.
func FindBinary(lookPath func(string) (string, error)) ([]string, error) {
	if lookPath == nil {
		lookPath = exec.LookPath
	}
	if p, err := lookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	if p, err := lookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, ErrNotInstalled
}

// Start writes the config into o.Dir, starts the server and waits until it
// answers queries.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("chserver: Options.Dir is required")
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	argv := []string{o.Binary}
	if o.Binary == "" {
		var err error
		if argv, err = FindBinary(o.LookPath); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("chserver: dir: %w", err)
	}
	o.Dir = dir
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("chserver: %w", err)
		}
	}
	var lastErr error
	// A free port can be taken between choosing and binding it; retry then.
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startOnce(ctx, o, argv)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "Address already in use") || o.TCPPort != 0 {
			break
		}
	}
	return nil, lastErr
}

func startOnce(ctx context.Context, o Options, argv []string) (*Server, error) {
	tcp, http := o.TCPPort, o.HTTPPort
	var err error
	if tcp == 0 {
		if tcp, err = freePort(); err != nil {
			return nil, err
		}
	}
	if http == 0 {
		if http, err = freePort(); err != nil {
			return nil, err
		}
	}
	interserver, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := writeConfig(o.Dir, tcp, http, interserver, o.ExtraConfig); err != nil {
		return nil, err
	}
	args := append(argv[1:], "--config-file="+filepath.Join(o.Dir, "config.xml"))
	cmd := exec.Command(argv[0], args...)
	cmd.Dir = o.Dir
	// Own process group, so Stop reaches any helper processes; on Linux
	// also killed when this process dies, so a crashed parent leaves no
	// server behind.
	cmd.SysProcAttr = procAttr()
	out, err := os.OpenFile(filepath.Join(o.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chserver: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("chserver: start %s: %w", argv[0], err)
	}
	s := &Server{opts: o, cmd: cmd, tcpPort: tcp, httpPort: http, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		out.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop(context.Background())
		return nil, fmt.Errorf("%w\n--- clickhouse log tail ---\n%s", err, s.LogTail(30))
	}
	o.Logger.Debug("clickhouse started", "pid", cmd.Process.Pid, "tcp", s.TCPAddr(), "http", s.HTTPAddr(), "dir", o.Dir)
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	for {
		if _, err := s.Query(ctx, "SELECT 1"); err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("chserver: server exited during start: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("chserver: server did not answer within %v: %w", s.opts.StartTimeout, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TCPAddr is the native-protocol address.
func (s *Server) TCPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort)) }

// HTTPAddr is the HTTP interface address.
func (s *Server) HTTPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.httpPort)) }

// DSN is a clickhouse-go DSN for database db ("default" when empty).
func (s *Server) DSN(db string) string {
	if db == "" {
		db = "default"
	}
	return "clickhouse://default:@" + s.TCPAddr() + "/" + db
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Dir is the server's directory.
func (s *Server) Dir() string { return s.opts.Dir }

// Query runs one statement over the HTTP interface and returns the body.
// It is for plumbing (readiness, version, CREATE DATABASE); applications
// use clickhouse-go through internal/chdb.
func (s *Server) Query(ctx context.Context, query string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.HTTPAddr()+"/?"+url.Values{"query": {query}}.Encode(), nil)
	if err != nil {
		return "", err
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("chserver: query: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("chserver: query: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("chserver: query %q: %s", query, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// Version returns the server version, e.g. "18.16.1".
func (s *Server) Version(ctx context.Context) (string, error) {
	v, err := s.Query(ctx, "SELECT version()")
	return strings.TrimSpace(v), err
}

// Stop terminates the server: SIGTERM to its process group, then SIGKILL if
// it has not exited when ctx ends (or after 20 s; the server waits for
// running queries on SIGTERM). It waits for the exit, so no child is left
// running. Later calls return the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		pgid := -s.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		grace := time.NewTimer(20 * time.Second)
		defer grace.Stop()
		select {
		case <-s.done:
			s.opts.Logger.Debug("clickhouse stopped", "pid", s.cmd.Process.Pid)
			return
		case <-ctx.Done():
		case <-grace.C:
		}
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-s.done
		s.stopErr = fmt.Errorf("chserver: server %d did not stop on SIGTERM; killed", s.cmd.Process.Pid)
		s.opts.Logger.Warn("clickhouse killed", "pid", s.cmd.Process.Pid)
	})
	return s.stopErr
}

// Done is closed when the server process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// LogTail returns the last n lines of the server's logs, for test failures.
func (s *Server) LogTail(n int) string {
	var b strings.Builder
	for _, name := range []string{"error.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(s.opts.Dir, "log", name))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "[%s]\n%s\n", name, bytes.Join(lines, []byte("\n")))
	}
	return b.String()
}

// plainHTTP keeps no idle connections: the server waits for open
// connections when it shuts down, so a pooled keep-alive would stall Stop.
var plainHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("chserver: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writeConfig writes a self-contained config: nothing is read from
// /etc/clickhouse-server, and every path is inside dir.
func writeConfig(dir string, tcp, http, interserver int, extra string) error {
	cfg := fmt.Sprintf(`<?xml version="1.0"?>
<!-- Written by lambdalog's chserver; rewritten at every start. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>%[1]s/log/server.log</log>
        <errorlog>%[1]s/log/error.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>%[2]d</tcp_port>
    <http_port>%[3]d</http_port>
    <interserver_http_port>%[4]d</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>%[1]s/data/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
%[5]s
</yandex>
`, dir, tcp, http, interserver, extra)
	users := `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>8000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("chserver: write config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		return fmt.Errorf("chserver: write users: %w", err)
	}
	return nil
}
