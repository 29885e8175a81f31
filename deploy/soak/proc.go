package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one platform process the soak supervises. It may be started
// several times (after a SIGKILL, or when it exited on its own); its peak
// memory is the largest over every incarnation.
type proc struct {
	name string // e.g. consume-1
	role string // e.g. consume: the key of its memory bound
	argv []string
	env  []string
	// base is the http://host:port of its /metrics and /readyz ("" when
	// it has none, like gen and batch run).
	base   string
	logDir string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
	expected bool // the soak asked it to stop
	// oneShot processes (gen, batch run, dataset verify) are expected to
	// exit by themselves.
	oneShot bool
	starts  int
	// crashes are exits nobody asked for, with their error.
	crashes []string
	peakKB  int64
	// goroutines at start (after it settled) and at the end.
	goStart, goEnd float64
	started        time.Time
}

// pidOf returns the current incarnation's pid, 0 when not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) logPath() string { return filepath.Join(p.logDir, p.name+".log") }

// start runs a new incarnation; its output is appended to the log file.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("soak: log of %s: %w", p.name, err)
	}
	fmt.Fprintf(f, "=== soak: start #%d at %s: %s\n", p.starts+1, time.Now().UTC().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a Ctrl-C on the soak's terminal reaches
	// the soak only, which then stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("soak: start %s: %w", p.name, err)
	}
	p.cmd, p.done, p.exitErr, p.expected = cmd, make(chan struct{}), nil, false
	p.starts++
	p.started = time.Now()
	done := p.done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.exitErr = err
		if !p.expected && !p.oneShot {
			p.crashes = append(p.crashes, fmt.Sprintf("%s: exit %v", time.Now().UTC().Format("15:04:05"), err))
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// signal sends sig and waits up to timeout for the exit; a process still
// alive then is SIGKILLed. It returns the exit error.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.expected = true
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
	default:
		_ = cmd.Process.Signal(sig)
		select {
		case <-done:
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-done
			p.mu.Lock()
			defer p.mu.Unlock()
			return fmt.Errorf("soak: %s did not exit within %v of %v: killed", p.name, timeout, sig)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// wait waits for a one-shot process to exit and returns its error.
func (p *proc) wait(ctx context.Context) error {
	p.mu.Lock()
	p.expected = true
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		_ = p.signal(syscall.SIGKILL, 10*time.Second)
		return fmt.Errorf("soak: %s: %w", p.name, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// waitReady polls /readyz until it answers 200, the process exits, or
// timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	if p.base == "" {
		return nil
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("soak: %s exited before it was ready: %v\n%s", p.name, p.exitErr, p.tail(15))
		}
		code, body, err := httpGet(ctx, p.base+"/readyz")
		if err == nil && code == http.StatusOK {
			return nil
		}
		last = fmt.Sprintf("%d %s %v", code, strings.TrimSpace(body), err)
		if time.Now().After(deadline) {
			return fmt.Errorf("soak: %s not ready after %v: %s\n%s", p.name, timeout, last, p.tail(15))
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// goroutines scrapes go_goroutines from /metrics.
func (p *proc) goroutines(ctx context.Context) (float64, error) {
	if p.base == "" {
		return 0, errors.New("no metrics endpoint")
	}
	code, body, err := httpGet(ctx, p.base+"/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("soak: %s /metrics: status %d", p.name, code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("soak: %s /metrics has no go_goroutines", p.name)
}

// sampleRSS records the running incarnation's peak resident set (VmHWM,
// the kernel's own high-water mark, so samples between peaks lose nothing
// but the last moments before a SIGKILL).
func (p *proc) sampleRSS() {
	if pid := p.pid(); pid > 0 {
		if kb, err := vmHWM(pid); err == nil {
			p.mu.Lock()
			p.peakKB = max(p.peakKB, kb)
			p.mu.Unlock()
		}
	}
}

func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("soak: no VmHWM for pid %d", pid)
}

// tail returns the last n lines of the process's log, for failures.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    | " + strings.Join(lines, "\n    | ")
}

// logContains reports whether the log holds s (from byte offset from on).
func (p *proc) logContains(s string, from int64) bool {
	f, err := os.Open(p.logPath())
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false
	}
	b, _ := io.ReadAll(f)
	return bytes.Contains(b, []byte(s))
}

func (p *proc) logSize() int64 {
	st, err := os.Stat(p.logPath())
	if err != nil {
		return 0
	}
	return st.Size()
}

var plainHTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func httpGet(ctx context.Context, url string) (int, string, error) {
	return httpDo(ctx, http.MethodGet, url, "", "")
}

func httpDo(ctx context.Context, method, url, body, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// freeAddr returns a loopback address with a port free at the time of the
// call; the soak chooses ports itself so restarted processes keep theirs.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("soak: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
