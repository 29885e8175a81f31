package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/colinmarc/hdfs/v2"
)

// connSet tracks the TCP connections one hdfs.Client dialed, so that a
// cancelled context or a retired client can cut them all: colinmarc/hdfs
// takes no context, and a call blocked on a socket only returns once the
// socket is closed or its deadline passes.
type connSet struct {
	mu    sync.Mutex
	conns map[*timeoutConn]struct{}
	dead  bool
}

// errConnsClosed is what dials of a killed connSet return.
var errConnsClosed = errors.New("storage: hdfs client closed")

// dialer returns the dial function for hdfs.ClientOptions: connect timeout
// from a net.Dialer, then an idle deadline on every read and write.
func (s *connSet) dialer(connectTimeout, ioTimeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		s.mu.Lock()
		dead := s.dead
		s.mu.Unlock()
		if dead {
			// A killed client must not reconnect: colinmarc redials the
			// NameNode after a failed write, which could let a complete
			// through after Abort.
			return nil, errConnsClosed
		}
		c, err := (&net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &timeoutConn{Conn: c, timeout: ioTimeout, set: s}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.dead {
			c.Close()
			return nil, errConnsClosed
		}
		if s.conns == nil {
			s.conns = make(map[*timeoutConn]struct{})
		}
		s.conns[tc] = struct{}{}
		return tc, nil
	}
}

// kill closes every connection and refuses new ones.
func (s *connSet) kill() {
	s.mu.Lock()
	s.dead = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

func (s *connSet) forget(c *timeoutConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// timeoutConn pushes its deadline forward on every read and write: a peer
// silent for longer than timeout fails the call, a busy one never does. The
// deadlines colinmarc sets itself (zero: none) are ignored for that reason.
type timeoutConn struct {
	net.Conn
	timeout time.Duration
	set     *connSet
}

func (c *timeoutConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *timeoutConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *timeoutConn) SetDeadline(time.Time) error      { return nil }
func (c *timeoutConn) SetReadDeadline(time.Time) error  { return nil }
func (c *timeoutConn) SetWriteDeadline(time.Time) error { return nil }

func (c *timeoutConn) Close() error {
	c.set.forget(c)
	return c.Conn.Close()
}

// hconn is one hdfs.Client with its connections.
type hconn struct {
	c    *hdfs.Client
	set  *connSet
	once sync.Once
}

// close cuts the connections first (so a hung call returns and releases
// the client's request lock), then closes the client, which stops its
// lease renewals.
func (x *hconn) close() {
	x.once.Do(func() {
		x.set.kill()
		x.c.Close()
	})
}

// errKind is how a backend error is handled.
type errKind struct {
	// retryable: the same call may succeed if tried again.
	retryable bool
	// transport: the connection failed, the request may or may not have
	// been executed, and the client's NameNode connection can no longer be
	// trusted (colinmarc would read a late answer as the next call's).
	transport bool
}

// retryableException reports whether a NameNode's Java exception is one
// thrown before executing a call, for a condition that passes: trying
// again is safe.
func retryableException(class string) bool {
	switch class {
	case "org.apache.hadoop.ipc.RetriableException",
		"org.apache.hadoop.ipc.StandbyException",
		"org.apache.hadoop.hdfs.server.namenode.SafeModeException",
		"org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException",
		"org.apache.hadoop.ipc.ObserverRetryOnActiveException",
		"org.apache.hadoop.ipc.CallQueueOverflowException",
		"org.apache.hadoop.hdfs.protocol.RecoveryInProgressException":
		return true
	}
	return false
}

// transportMessages are colinmarc/hdfs errors that only exist as strings
// (its error values are internal or formatted with %s) and all mean a
// NameNode or DataNode connection failed.
func transportMessages() []string {
	return []string{
		"no available namenodes",
		"no available datanodes",
		"unexpected sequence number",
		"invalid response from namenode",
		"invalid response from datanode",
		"write failed:",
		"read failed:",
		"ack error from datanode",
		"invalid ack sequence number",
		"invalid checksum",
		"hdfs client closed",
	}
}

// classify decides how an error from colinmarc/hdfs is handled.
func classify(err error) errKind {
	if err == nil {
		return errKind{}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrUncertain) || errors.Is(err, errPermanent) {
		return errKind{}
	}
	var he hdfs.Error
	if errors.As(err, &he) {
		return errKind{retryable: retryableException(he.Exception())}
	}
	if errors.Is(err, hdfs.ErrReplicating) {
		return errKind{retryable: true}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return errKind{retryable: true, transport: true}
	}
	msg := strings.ToLower(err.Error())
	for _, m := range transportMessages() {
		if strings.Contains(msg, m) {
			return errKind{retryable: true, transport: true}
		}
	}
	return errKind{}
}

// errPermanent marks an error the retry loop must not retry even though
// its cause looks transient.
var errPermanent = errors.New("permanent")

// classes returns the error classes to mark err with.
func (k errKind) classes() []error {
	if k.retryable {
		return []error{ErrRetryable}
	}
	return nil
}

// wait sleeps before retry number attempt (1 = the first retry).
func (p RetryPolicy) wait(ctx context.Context, attempt int) error {
	d := p.Initial
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	// ±20% jitter so clients that failed together do not retry together.
	d = d*4/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// opError formats a failed operation with its classes.
func opError(op, name string, err error) error {
	return mark(fmt.Errorf("storage: %s %s: %w", op, name, err), classify(err).classes()...)
}
