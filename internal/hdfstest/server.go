package hdfstest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// options are the settings of a Server; see the With* functions.
type options struct {
	blockSize    int64
	replication  int
	dir          string
	listenAddr   string
	log          *slog.Logger
	listingLimit int
	leaseSoft    time.Duration
	leaseHard    time.Duration
}

// Option configures a Server.
type Option func(*options)

// DefaultBlockSize is the block size clients get from getServerDefaults
// unless WithBlockSize says otherwise: 1 MiB, small enough that tests
// exercise multi-block files with a few megabytes (HDFS uses 128 MiB).
const DefaultBlockSize = 1 << 20

// WithBlockSize sets the default block size (bytes, a multiple of 512).
func WithBlockSize(n int64) Option { return func(o *options) { o.blockSize = n } }

// WithReplication sets the default replication factor the server reports
// and records for files. There is one DataNode, so every block has exactly
// one replica whatever this says.
func WithReplication(n int) Option { return func(o *options) { o.replication = n } }

// WithDir keeps the namespace image and the block replicas under dir, so a
// Server started again on dir sees the same files. Without it, blocks go to
// a temporary directory removed by Close and the namespace lives in memory.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithListenAddr sets the NameNode's listen address (default
// "127.0.0.1:0", a free port). The DataNode always takes a free port on
// the same host.
func WithListenAddr(addr string) Option { return func(o *options) { o.listenAddr = addr } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithListingLimit sets how many entries one getListing answer carries
// (HDFS's dfs.ls.limit, default 1000); small values exercise partial
// listings.
func WithListingLimit(n int) Option { return func(o *options) { o.listingLimit = n } }

// WithLeaseLimits sets the lease soft limit (after which another client's
// create or append may take over a file whose writer stopped renewing) and
// hard limit (after which the NameNode closes such a file itself). HDFS
// defaults, used here too: 60s and 20m.
func WithLeaseLimits(soft, hard time.Duration) Option {
	return func(o *options) { o.leaseSoft, o.leaseHard = soft, hard }
}

// Server is a running NameNode + DataNode pair.
type Server struct {
	opts     options
	log      *slog.Logger
	nn       *nameNode
	dn       *dataNode
	handlers map[string]handler
	faults   *Faults
	nnLn     net.Listener
	dnLn     net.Listener
	tmpDir   string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
	closeErr error
}

// Start starts a Server for a test, closes it in t.Cleanup and fails the
// test if it cannot start.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := New(opts...)
	if err != nil {
		t.Fatalf("hdfstest: start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("hdfstest: close: %v", err)
		}
	})
	return s
}

// New starts a Server listening on 127.0.0.1. Close stops it.
func New(opts ...Option) (*Server, error) {
	o := options{
		blockSize: DefaultBlockSize, replication: 1, listenAddr: "127.0.0.1:0",
		listingLimit: 1000, leaseSoft: time.Minute, leaseHard: 20 * time.Minute,
		log: slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.blockSize <= 0 || o.blockSize%bytesPerChecksum != 0 {
		return nil, fmt.Errorf("hdfstest: block size %d is not a positive multiple of %d", o.blockSize, bytesPerChecksum)
	}
	if o.replication < 1 || o.listingLimit < 1 || o.leaseSoft <= 0 || o.leaseHard <= 0 {
		return nil, errors.New("hdfstest: replication, listing limit and lease limits must be positive")
	}
	s := &Server{opts: o, log: o.log, faults: &Faults{}, conns: map[net.Conn]struct{}{}}
	dir, imageFile := o.dir, ""
	if dir == "" {
		tmp, err := os.MkdirTemp("", "hdfstest-")
		if err != nil {
			return nil, fmt.Errorf("hdfstest: temp dir: %w", err)
		}
		s.tmpDir, dir = tmp, tmp
	} else {
		if err := os.MkdirAll(filepath.Join(dir, "namenode"), 0o755); err != nil {
			return nil, fmt.Errorf("hdfstest: namenode dir: %w", err)
		}
		imageFile = filepath.Join(dir, "namenode", "fsimage.json")
	}
	fail := func(err error) (*Server, error) {
		for _, ln := range []net.Listener{s.nnLn, s.dnLn} {
			if ln != nil {
				ln.Close()
			}
		}
		if s.tmpDir != "" {
			os.RemoveAll(s.tmpDir)
		}
		return nil, err
	}
	var err error
	if s.dn, err = newDataNode(s.log, filepath.Join(dir, "datanode"), s.faults); err != nil {
		return fail(err)
	}
	if s.nn, err = newNameNode(s.log, &s.opts, s.dn, imageFile); err != nil {
		return fail(err)
	}
	s.nn.faults = s.faults
	s.dn.nn = s.nn
	s.handlers = s.nn.handlers()
	if s.nnLn, err = net.Listen("tcp", o.listenAddr); err != nil {
		return fail(fmt.Errorf("hdfstest: namenode listen %s: %w", o.listenAddr, err))
	}
	host, _, err := net.SplitHostPort(s.nnLn.Addr().String())
	if err != nil {
		return fail(err)
	}
	if s.dnLn, err = net.Listen("tcp", net.JoinHostPort(host, "0")); err != nil {
		return fail(fmt.Errorf("hdfstest: datanode listen: %w", err))
	}
	s.dn.xferPort = s.dnLn.Addr().(*net.TCPAddr).Port
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(3)
	go s.accept(s.nnLn, s.serveIPC)
	go s.accept(s.dnLn, func(c net.Conn) { s.dn.serve(s.ctx, c) })
	go s.monitorLeases()
	s.log.Info("hdfstest: started", "namenode", s.NameNodeAddr(), "datanode", s.dnLn.Addr().String(), "dir", dir, "block_size", o.blockSize)
	return s, nil
}

func (s *Server) accept(ln net.Listener, serve func(net.Conn)) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("hdfstest: accept", "addr", ln.Addr().String(), "err", err)
			}
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			serve(c)
		}()
	}
}

// track registers (or forgets) a live connection so Close can cut it.
func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) monitorLeases() {
	defer s.wg.Done()
	tick := min(s.opts.leaseHard/4, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.nn.expireLeases()
		}
	}
}

// URL returns the cluster's file system URI, "hdfs://127.0.0.1:PORT/".
func (s *Server) URL() string { return "hdfs://" + s.NameNodeAddr() + "/" }

// NameNodeAddr returns the NameNode's host:port, for
// hdfs.ClientOptions.Addresses.
func (s *Server) NameNodeAddr() string { return s.nnLn.Addr().String() }

// DataNodeAddr returns the DataNode's data-transfer host:port.
func (s *Server) DataNodeAddr() string { return s.dnLn.Addr().String() }

// Close stops both nodes, cuts open connections (ending hung calls),
// writes the namespace image when WithDir is set and removes the temporary
// directory otherwise. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.cancel()
	var errs []error
	for _, ln := range []net.Listener{s.nnLn, s.dnLn} {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	s.wg.Wait()
	s.nn.mu.Lock()
	if err := s.nn.persist(); err != nil {
		errs = append(errs, err)
	}
	s.nn.mu.Unlock()
	if s.tmpDir != "" {
		if err := os.RemoveAll(s.tmpDir); err != nil {
			errs = append(errs, fmt.Errorf("hdfstest: remove %s: %w", s.tmpDir, err))
		}
	}
	s.mu.Lock()
	s.closeErr = errors.Join(errs...)
	s.mu.Unlock()
	s.log.Info("hdfstest: closed", "namenode", s.NameNodeAddr())
	return s.closeErr
}

// FileState is the NameNode's view of a file, for test assertions that the
// client API cannot make (clients do not see whether a file is still under
// construction).
type FileState struct {
	// Length is what readers see: complete blocks only while under
	// construction.
	Length int64
	// UnderConstruction is true until complete succeeds (or the lease is
	// recovered).
	UnderConstruction bool
	// Holder is the client name holding the lease, "" when complete.
	Holder string
	// BlockLengths lists every block's committed length (0 while being
	// written).
	BlockLengths []int64
	// BlockSize is the file's block size.
	BlockSize int64
}

// File returns the state of the file at name, and false if there is no
// file there.
func (s *Server) File(name string) (FileState, bool) {
	s.nn.mu.Lock()
	defer s.nn.mu.Unlock()
	n, err := s.nn.lookup(name)
	if err != nil || n == nil || n.Dir {
		return FileState{}, false
	}
	st := FileState{Length: int64(n.visibleLength()), UnderConstruction: n.underConstruction(), Holder: n.Holder, BlockSize: int64(n.BlockSize)}
	for _, b := range n.Blocks {
		st.BlockLengths = append(st.BlockLengths, int64(b.NumBytes))
	}
	return st, true
}
