package hdfstest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/colinmarc/hdfs/v2"
	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

// newClient connects a colinmarc client whose connections give up after
// timeout, so a hung server fails the test instead of hanging it.
func newClient(t testing.TB, s *Server, timeout time.Duration) *hdfs.Client {
	t.Helper()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if timeout > 0 {
			return &deadlineConn{Conn: c, timeout: timeout}, nil
		}
		return c, nil
	}
	c, err := hdfs.NewClient(hdfs.ClientOptions{
		Addresses: []string{s.NameNodeAddr()}, User: "test",
		NamenodeDialFunc: dial, DatanodeDialFunc: dial,
	})
	if err != nil {
		t.Fatalf("hdfs.NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deadlineConn pushes the deadline forward on every read and write: an idle
// peer fails the call after timeout, a busy one never does.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Read(b []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(b)
}

func (c *deadlineConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(b)
}

// The client sets its own deadlines (zero = none) on datanode connections;
// ignore them so the per-operation timeout above stays in force.
func (c *deadlineConn) SetDeadline(time.Time) error { return nil }

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seedOf(seed)).Read(b)
	return b
}

func seedOf(s uint64) [32]byte {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:], s)
	return k
}

func writeFile(t testing.TB, c *hdfs.Client, name string, data []byte) {
	t.Helper()
	w, err := c.Create(name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	// No Write for no data: colinmarc allocates a block on any Write, even
	// an empty one, and a block no replica was ever written for cannot
	// complete (HDFS refuses too).
	if len(data) > 0 {
		if _, err := w.Write(data); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

func readFile(t testing.TB, c *hdfs.Client, name string) []byte {
	t.Helper()
	b, err := c.ReadFile(name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func mustEqualBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at offset %d", what, len(got), len(want), i)
	}
}

// remoteException extracts the Java exception class from a client error.
func remoteException(err error) string {
	var he hdfs.Error
	if errors.As(err, &he) {
		return he.Exception()
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		if he, ok := pe.Err.(hdfs.Error); ok {
			return he.Exception()
		}
	}
	return ""
}

// rawClient speaks Hadoop IPC directly, for calls the colinmarc client has no
// API for (rename2 without OVERWRITE, the old rename) and protocol checks.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	id   int32
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial namenode: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte{'h', 'r', 'p', 'c', 9, 0, 0}); err != nil {
		t.Fatal(err)
	}
	hdr := &pb.RpcRequestHeaderProto{
		RpcKind: pb.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(), RpcOp: pb.RpcRequestHeaderProto_RPC_FINAL_PACKET.Enum(),
		CallId: proto.Int32(-3), ClientId: []byte("raw-client-0123456"),
	}
	cc := &pb.IpcConnectionContextProto{UserInfo: &pb.UserInformationProto{EffectiveUser: proto.String("raw")}, Protocol: proto.String(clientProtocol)}
	if err := writeFrame(conn, hdr, cc); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// call sends one request and decodes the answer into resp; a remote
// exception comes back as *remoteError.
func (c *rawClient) call(method string, req, resp proto.Message) error {
	c.t.Helper()
	c.id++
	hdr := &pb.RpcRequestHeaderProto{
		RpcKind: pb.RpcKindProto_RPC_PROTOCOL_BUFFER.Enum(), RpcOp: pb.RpcRequestHeaderProto_RPC_FINAL_PACKET.Enum(),
		CallId: proto.Int32(c.id), ClientId: []byte("raw-client-0123456"),
	}
	rh := &pb.RequestHeaderProto{MethodName: proto.String(method), DeclaringClassProtocolName: proto.String(clientProtocol), ClientProtocolVersion: proto.Uint64(1)}
	if err := writeFrame(c.conn, hdr, rh, req); err != nil {
		c.t.Fatalf("%s: write: %v", method, err)
	}
	f, err := readFrame(c.r)
	if err != nil {
		c.t.Fatalf("%s: read: %v", method, err)
	}
	rrh := &pb.RpcResponseHeaderProto{}
	if err := proto.Unmarshal(f[0], rrh); err != nil {
		c.t.Fatalf("%s: decode response header: %v", method, err)
	}
	if int32(rrh.GetCallId()) != c.id {
		c.t.Fatalf("%s: response for call %d, want %d", method, rrh.GetCallId(), c.id)
	}
	if rrh.GetStatus() != pb.RpcResponseHeaderProto_SUCCESS {
		return &rawError{remoteError: remoteError{class: rrh.GetExceptionClassName(), msg: rrh.GetErrorMsg()}, code: rrh.GetErrorDetail()}
	}
	if len(f) != 2 {
		c.t.Fatalf("%s: %d messages in a success frame", method, len(f))
	}
	if err := proto.Unmarshal(f[1], resp); err != nil {
		c.t.Fatalf("%s: decode response: %v", method, err)
	}
	return nil
}

type rawError struct {
	remoteError
	code pb.RpcResponseHeaderProto_RpcErrorCodeProto
}
