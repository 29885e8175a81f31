package hdfstest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

const (
	ipcVersion         = 9
	authSimple         = 0
	clientProtocol     = "org.apache.hadoop.hdfs.protocol.ClientProtocol"
	connectionContext  = -3 // call ID of the IpcConnectionContextProto frame
	pingCallID         = -4
	maxFrameLen        = 64 << 20
	frameQueueCapacity = 16
)

// frame is one length-prefixed IPC frame, split into its varint-delimited
// messages.
type frame [][]byte

func readFrame(r io.Reader) (frame, error) {
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lenBuf[:])
	if n > maxFrameLen {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d", n, maxFrameLen)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	var f frame
	for len(buf) > 0 {
		l, k := binary.Uvarint(buf)
		if k <= 0 || l > uint64(len(buf)-k) {
			return nil, errors.New("malformed varint-delimited message in frame")
		}
		f = append(f, buf[k:k+int(l)])
		buf = buf[k+int(l):]
	}
	return f, nil
}

// writeFrame sends messages as one frame: uint32 length, then each message
// prefixed by its varint length.
func writeFrame(w io.Writer, msgs ...proto.Message) error {
	var body bytes.Buffer
	var v [binary.MaxVarintLen64]byte
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		body.Write(v[:binary.PutUvarint(v[:], uint64(len(b)))])
		body.Write(b)
	}
	out := make([]byte, 4, 4+body.Len())
	binary.BigEndian.PutUint32(out, uint32(body.Len()))
	_, err := w.Write(append(out, body.Bytes()...))
	return err
}

// serveIPC speaks Hadoop IPC on one client connection. A reader goroutine
// decodes frames while the calls run one at a time in order; when the client
// goes away the connection context is cancelled, which ends hung calls.
func (s *Server) serveIPC(conn net.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	log := s.log.With("conn", conn.RemoteAddr().String())
	r := bufio.NewReader(conn)

	var preamble [7]byte
	if _, err := io.ReadFull(r, preamble[:]); err != nil {
		log.Debug("hdfstest: ipc preamble", "err", err)
		return
	}
	if string(preamble[:4]) != "hrpc" || preamble[4] != ipcVersion {
		log.Warn("hdfstest: not a Hadoop IPC v9 client", "preamble", fmt.Sprintf("%q", preamble[:]))
		return
	}
	if preamble[6] != authSimple {
		// SASL (Kerberos, tokens) is out of scope for a test server.
		log.Warn("hdfstest: client asked for SASL authentication; only simple auth is supported", "auth", preamble[6])
		s.fatal(conn, pb.RpcResponseHeaderProto_FATAL_UNAUTHORIZED, "SASL is not supported by hdfstest")
		return
	}
	f, err := readFrame(r)
	if err != nil || len(f) != 2 {
		log.Warn("hdfstest: bad connection context frame", "err", err)
		return
	}
	hdr, cc := &pb.RpcRequestHeaderProto{}, &pb.IpcConnectionContextProto{}
	if err := proto.Unmarshal(f[0], hdr); err != nil || hdr.GetCallId() != connectionContext {
		log.Warn("hdfstest: expected the connection context", "err", err, "call_id", hdr.GetCallId())
		return
	}
	if err := proto.Unmarshal(f[1], cc); err != nil {
		log.Warn("hdfstest: decode IpcConnectionContextProto", "err", err)
		return
	}
	if p := cc.GetProtocol(); p != "" && p != clientProtocol {
		log.Warn("hdfstest: unsupported protocol", "protocol", p)
		return
	}
	user := cc.GetUserInfo().GetEffectiveUser()
	if user == "" {
		user = cc.GetUserInfo().GetRealUser()
	}

	frames := make(chan frame, frameQueueCapacity)
	readerDone := make(chan struct{})
	defer func() {
		// Stop the reader before returning, so no goroutine outlives Close.
		cancel()
		conn.Close()
		<-readerDone
	}()
	go func() {
		defer close(readerDone)
		defer close(frames)
		defer cancel()
		for {
			f, err := readFrame(r)
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					log.Debug("hdfstest: ipc read", "err", err)
				}
				return
			}
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	for f := range frames {
		if !s.serveCall(ctx, conn, log, user, f) {
			return
		}
	}
}

// serveCall runs one request frame; false means close the connection.
func (s *Server) serveCall(ctx context.Context, conn net.Conn, log *slog.Logger, user string, f frame) bool {
	if len(f) == 0 {
		return false
	}
	hdr := &pb.RpcRequestHeaderProto{}
	if err := proto.Unmarshal(f[0], hdr); err != nil {
		log.Warn("hdfstest: decode RpcRequestHeaderProto", "err", err)
		return false
	}
	if hdr.GetRpcOp() == pb.RpcRequestHeaderProto_RPC_CLOSE_CONNECTION {
		return false
	}
	if hdr.GetCallId() == pingCallID {
		return true // pings are not answered
	}
	resp := &pb.RpcResponseHeaderProto{
		CallId:              proto.Uint32(uint32(hdr.GetCallId())),
		Status:              pb.RpcResponseHeaderProto_SUCCESS.Enum(),
		ServerIpcVersionNum: proto.Uint32(ipcVersion),
		ClientId:            hdr.GetClientId(),
		RetryCount:          proto.Int32(hdr.GetRetryCount()),
	}
	fail := func(code pb.RpcResponseHeaderProto_RpcErrorCodeProto, class, msg string) bool {
		resp.Status = pb.RpcResponseHeaderProto_ERROR.Enum()
		resp.ErrorDetail = code.Enum()
		resp.ExceptionClassName = proto.String(class)
		resp.ErrorMsg = proto.String(msg)
		if err := writeFrame(conn, resp); err != nil {
			log.Debug("hdfstest: ipc write", "err", err)
			return false
		}
		return true
	}
	if len(f) != 3 {
		return fail(pb.RpcResponseHeaderProto_ERROR_RPC_SERVER, excServer, fmt.Sprintf("expected 3 messages in a request frame, got %d", len(f)))
	}
	rh := &pb.RequestHeaderProto{}
	if err := proto.Unmarshal(f[1], rh); err != nil {
		return fail(pb.RpcResponseHeaderProto_ERROR_RPC_SERVER, excServer, "decode RequestHeaderProto: "+err.Error())
	}
	method := rh.GetMethodName()
	if rh.GetDeclaringClassProtocolName() != clientProtocol {
		log.Warn("hdfstest: unknown protocol", "protocol", rh.GetDeclaringClassProtocolName(), "method", method)
		return fail(pb.RpcResponseHeaderProto_ERROR_NO_SUCH_PROTOCOL, excNoSuchProtocol, "Unknown protocol: "+rh.GetDeclaringClassProtocolName())
	}
	h, ok := s.handlers[method]
	if !ok {
		log.Warn("hdfstest: unimplemented ClientNamenodeProtocol method; add it to nameNode.handlers", "method", method)
		return fail(pb.RpcResponseHeaderProto_ERROR_NO_SUCH_METHOD, excNoSuchMethod, "Unknown method "+method+" called on "+clientProtocol+" protocol (hdfstest implements a subset).")
	}
	req := h.newReq()
	if err := proto.Unmarshal(f[2], req); err != nil {
		return fail(pb.RpcResponseHeaderProto_ERROR_APPLICATION, ExcIO, "decode "+method+" request: "+err.Error())
	}
	out, err := s.runCall(ctx, h, &call{method: method, user: user}, req)
	if err != nil {
		var re *remoteError
		if !errors.As(err, &re) {
			re = &remoteError{class: ExcIO, msg: err.Error()}
		}
		s.log.Debug("hdfstest: call failed", "method", method, "exception", re.class, "msg", re.msg)
		return fail(pb.RpcResponseHeaderProto_ERROR_APPLICATION, re.class, re.msg)
	}
	if err := writeFrame(conn, resp, out); err != nil {
		log.Debug("hdfstest: ipc write", "err", err)
		return false
	}
	return true
}

// runCall applies the armed faults and runs the handler under the namespace
// lock, writing the image after a mutating call.
func (s *Server) runCall(ctx context.Context, h handler, c *call, req proto.Message) (proto.Message, error) {
	eff, err := s.faults.before(ctx, c.method)
	if err != nil {
		return nil, err
	}
	nn := s.nn
	nn.mu.Lock()
	out, err := h.run(c, req)
	if h.mutates {
		if perr := nn.persist(); perr != nil && err == nil {
			out, err = nil, perr
		}
	}
	nn.mu.Unlock()
	if err == nil && eff.failAfter != nil {
		return nil, eff.failAfter
	}
	return out, err
}

// fatal answers a connection-level failure before closing the connection.
func (s *Server) fatal(conn net.Conn, code pb.RpcResponseHeaderProto_RpcErrorCodeProto, msg string) {
	_ = writeFrame(conn, &pb.RpcResponseHeaderProto{
		CallId:              proto.Uint32(uint32(0xffffffff)),
		Status:              pb.RpcResponseHeaderProto_FATAL.Enum(),
		ServerIpcVersionNum: proto.Uint32(ipcVersion),
		ErrorDetail:         code.Enum(),
		ExceptionClassName:  proto.String(excServer),
		ErrorMsg:            proto.String(msg),
	})
}
