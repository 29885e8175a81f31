package chdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// flakyConn fails its first PrepareBatch calls with err.
type flakyConn struct {
	driver.Conn
	err   error
	fails int
	calls int
}

func (c *flakyConn) PrepareBatch(context.Context, string, ...driver.PrepareBatchOption) (driver.Batch, error) {
	c.calls++
	if c.calls <= c.fails {
		return nil, c.err
	}
	return nil, nil
}

// closedRead is the driver's error when a pooled connection was closed
// under it (as seen in CI).
var closedRead = fmt.Errorf("query processing: failed to read first block packet from 127.0.0.1:9000 (conn_id=1): %w",
	&net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed})

// TestPrepareBatchRetriesABrokenConnection: an INSERT whose pooled
// connection broke before any row was sent is prepared again once, on a
// fresh connection; a server refusal, a cancelled context or a second
// broken connection is returned as it is.
func TestPrepareBatchRetriesABrokenConnection(t *testing.T) {
	const insert = "INSERT INTO t (a)"
	for _, c := range []struct {
		name      string
		err       error
		fails     int
		ctxDone   bool
		wantCalls int
		wantErr   bool
	}{
		{"closed connection, once", closedRead, 1, false, 2, false},
		{"reset by peer, once", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, 1, false, 2, false},
		{"eof, once", fmt.Errorf("read: %w", io.EOF), 1, false, 2, false},
		{"broken twice", closedRead, 2, false, 2, true},
		{"server refusal", &clickhouse.Exception{Code: 60, Message: "table does not exist"}, 1, false, 1, true},
		{"cancelled", closedRead, 1, true, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fc := &flakyConn{err: c.err, fails: c.fails}
			db := &DB{Conn: fc}
			ctx, cancel := context.WithCancel(context.Background())
			if c.ctxDone {
				cancel()
			}
			defer cancel()
			_, err := db.PrepareBatch(ctx, insert)
			if fc.calls != c.wantCalls || (err != nil) != c.wantErr {
				t.Fatalf("%d calls, err %v; want %d calls, error %v", fc.calls, err, c.wantCalls, c.wantErr)
			}
			if err != nil && !errors.Is(err, c.err) {
				t.Fatalf("error %v does not wrap the driver's %v", err, c.err)
			}
		})
	}
}
