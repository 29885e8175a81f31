package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/colinmarc/hdfs/v2"
	"github.com/lambdalog/lambdalog/internal/storage"
)

// remoteErr is a NameNode exception as colinmarc returns it.
type remoteErr struct{ class string }

func (e remoteErr) Method() string    { return "create" }
func (e remoteErr) Desc() string      { return "ERROR_APPLICATION" }
func (e remoteErr) Exception() string { return e.class }
func (e remoteErr) Message() string   { return "" }
func (e remoteErr) Error() string {
	return "create call failed with ERROR_APPLICATION (" + e.class + ")"
}

func TestClassify(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		err                  error
		retryable, transport bool
	}{
		{&os.PathError{Op: "create", Path: "/x", Err: remoteErr{"org.apache.hadoop.ipc.RetriableException"}}, true, false},
		{remoteErr{"org.apache.hadoop.ipc.StandbyException"}, true, false},
		{remoteErr{"org.apache.hadoop.hdfs.server.namenode.SafeModeException"}, true, false},
		{remoteErr{"org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException"}, true, false},
		{remoteErr{"java.io.IOException"}, false, false},
		{remoteErr{"org.apache.hadoop.security.AccessControlException"}, false, false},
		{&os.PathError{Op: "create", Path: "/x", Err: hdfs.ErrReplicating}, true, false},
		{timeout, true, true},
		{fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), true, true},
		{io.EOF, true, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true, true},
		{syscall.ECONNRESET, true, true},
		{errors.New("no available namenodes: dial tcp: connection refused"), true, true},
		{errors.New("unexpected sequence number"), true, true},
		{errors.New("write failed: ERROR (disk full)"), true, true},
		{errors.New("Ack error from datanode: ERROR"), true, true},
		{&os.PathError{Op: "stat", Path: "/x", Err: os.ErrNotExist}, false, false},
		{&os.PathError{Op: "create", Path: "/x", Err: os.ErrExist}, false, false},
		{fmt.Errorf("x: %w", fs.ErrExist), false, false},
		{context.Canceled, false, false},
		{errors.New("is a directory"), false, false},
	} {
		r, tr := storage.Classify(tc.err)
		if r != tc.retryable || tr != tc.transport {
			t.Errorf("classify(%v) = retryable %v, transport %v; want %v, %v", tc.err, r, tr, tc.retryable, tc.transport)
		}
	}
}

func TestErrorMarks(t *testing.T) {
	if storage.IsRetryable(fs.ErrExist) || !storage.IsRetryable(fmt.Errorf("x: %w", storage.ErrRetryable)) {
		t.Fatal("IsRetryable does not follow ErrRetryable")
	}
}
