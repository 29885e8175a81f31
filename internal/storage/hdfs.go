package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/colinmarc/hdfs/v2"
	krb "github.com/jcmturner/gokrb5/v8/client"
)

// hdfsFS is the HDFS backend over github.com/colinmarc/hdfs/v2. Metadata
// calls share one client, replaced when its NameNode connection fails;
// every File and Reader has a client of its own, so that cancelling one
// cuts only its connections and a File's lease lives and dies with it.
type hdfsFS struct {
	root string // absolute HDFS path, "/" or "/a/b"
	opts Options
	krb  *krb.Client
	user string
	spn  string

	addrs []string

	mu          sync.Mutex
	meta        *hconn
	open        map[*hconn]struct{} // every live client, cut by Close
	closed      bool
	replication int
	blockSize   int64
}

func openHDFS(ctx context.Context, addrs []string, root string, opts Options) (*hdfsFS, error) {
	where := "hdfs://" + strings.Join(addrs, ",") + root
	h := &hdfsFS{root: path.Clean(root), opts: opts, addrs: addrs, open: make(map[*hconn]struct{}),
		replication: opts.Replication, blockSize: opts.BlockSize}
	if opts.Kerberos != nil {
		kc, err := opts.Kerberos.client()
		if err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", where, err)
		}
		h.krb, h.spn = kc, opts.Kerberos.ServicePrincipal
	} else {
		h.user = opts.User
		if h.user == "" {
			u, err := user.Current()
			if err != nil {
				return nil, fmt.Errorf("storage: open %s: no HDFS user given and no OS user: %w", where, err)
			}
			h.user = u.Username
		}
	}
	if err := h.do(ctx, "open", where, func(c *hdfs.Client, _ bool) error {
		if h.replication == 0 || h.blockSize == 0 {
			d, err := c.ServerDefaults()
			if err != nil {
				return fmt.Errorf("server defaults: %w", err)
			}
			if h.replication == 0 {
				h.replication = d.Replication
			}
			if h.blockSize == 0 {
				h.blockSize = d.BlockSize
			}
		}
		return c.MkdirAll(h.root, 0o755)
	}); err != nil {
		h.Close()
		return nil, err
	}
	opts.Logger.Debug("storage: hdfs root open", "url", where, "replication", h.replication, "block_size", h.blockSize)
	return h, nil
}

// dial connects a new client.
func (h *hdfsFS) dial() (*hconn, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: %w", fs.ErrClosed, errPermanent)
	}
	set := &connSet{}
	d := set.dialer(h.opts.ConnectTimeout, h.opts.IOTimeout)
	c, err := hdfs.NewClient(hdfs.ClientOptions{
		Addresses: h.addrs, User: h.user,
		NamenodeDialFunc: d, DatanodeDialFunc: d,
		KerberosClient: h.krb, KerberosServicePrincipleName: h.spn,
	})
	if err != nil {
		set.kill()
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(h.addrs, ","), err)
	}
	x := &hconn{c: c, set: set}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		x.close()
		return nil, fmt.Errorf("%w: %w", fs.ErrClosed, errPermanent)
	}
	h.open[x] = struct{}{}
	return x, nil
}

// release closes a client and forgets it.
func (h *hdfsFS) release(x *hconn) {
	h.mu.Lock()
	delete(h.open, x)
	if h.meta == x {
		h.meta = nil
	}
	h.mu.Unlock()
	x.close()
}

// metaClient returns the shared client for metadata calls.
func (h *hdfsFS) metaClient() (*hconn, error) {
	h.mu.Lock()
	if m := h.meta; m != nil {
		h.mu.Unlock()
		return m, nil
	}
	h.mu.Unlock()
	x, err := h.dial()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.meta != nil { // another caller won the race; use theirs
		delete(h.open, x)
		go x.close()
		return h.meta, nil
	}
	h.meta = x
	return x, nil
}

// do runs a metadata call with retries. fn gets uncertain=true once an
// earlier attempt failed on the transport, after the request may have been
// executed: calls that are not idempotent must then check what happened.
func (h *hdfsFS) do(ctx context.Context, op, name string, fn func(c *hdfs.Client, uncertain bool) error) error {
	uncertain := false
	var err error
	for attempt := 1; ; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			if err != nil {
				return fmt.Errorf("storage: %s %s: %w (after %w)", op, name, cerr, err)
			}
			return fmt.Errorf("storage: %s %s: %w", op, name, cerr)
		}
		var x *hconn
		x, err = h.metaClient()
		if err == nil {
			// colinmarc takes no context: cancelling cuts the connection.
			stop := context.AfterFunc(ctx, func() { h.release(x) })
			err = fn(x.c, uncertain)
			stop()
			if err == nil {
				return nil
			}
		}
		k := classify(err)
		if k.transport && x != nil {
			h.release(x)
			uncertain = true
		}
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("storage: %s %s: %w (after %w)", op, name, cerr, err)
		}
		if !k.retryable || attempt >= h.opts.Retry.Attempts {
			return opError(op, name, err)
		}
		h.opts.Logger.Warn("storage: retrying", "op", op, "name", name, "attempt", attempt, "err", err)
		if werr := h.opts.Retry.wait(ctx, attempt); werr != nil {
			return fmt.Errorf("storage: %s %s: %w (after %w)", op, name, werr, err)
		}
	}
}

func (h *hdfsFS) abs(name string) string { return path.Join(h.root, name) }

func (h *hdfsFS) Stat(ctx context.Context, name string) (Entry, error) {
	if err := checkName("stat", name); err != nil {
		return Entry{}, err
	}
	var e Entry
	err := h.do(ctx, "stat", name, func(c *hdfs.Client, _ bool) error {
		fi, err := c.Stat(h.abs(name))
		if err != nil {
			return err
		}
		e = entryOf(fi)
		return nil
	})
	if err != nil {
		return Entry{}, err
	}
	e.Name = baseName(name)
	return e, nil
}

func (h *hdfsFS) ReadDir(ctx context.Context, name string) ([]Entry, error) {
	if err := checkName("readdir", name); err != nil {
		return nil, err
	}
	var out []Entry
	err := h.do(ctx, "readdir", name, func(c *hdfs.Client, _ bool) error {
		fis, err := c.ReadDir(h.abs(name))
		if err != nil {
			return err
		}
		out = make([]Entry, 0, len(fis))
		for _, fi := range fis {
			out = append(out, entryOf(fi))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (h *hdfsFS) MkdirAll(ctx context.Context, name string) error {
	if err := checkName("mkdirall", name); err != nil {
		return err
	}
	// mkdirs is idempotent: a retry after a lost answer is harmless.
	return h.do(ctx, "mkdirall", name, func(c *hdfs.Client, _ bool) error {
		return c.MkdirAll(h.abs(name), 0o755)
	})
}

func (h *hdfsFS) Remove(ctx context.Context, name string) error {
	if err := checkName("remove", name); err != nil {
		return err
	}
	if name == "." {
		return fmt.Errorf("storage: remove %s: cannot remove the root: %w", name, fs.ErrInvalid)
	}
	return h.do(ctx, "remove", name, func(c *hdfs.Client, uncertain bool) error {
		err := c.Remove(h.abs(name))
		if uncertain && errors.Is(err, fs.ErrNotExist) {
			return nil // the lost attempt removed it
		}
		return err
	})
}

func (h *hdfsFS) RemoveAll(ctx context.Context, name string) error {
	if err := checkName("removeall", name); err != nil {
		return err
	}
	if name == "." {
		return fmt.Errorf("storage: removeall %s: cannot remove the root: %w", name, fs.ErrInvalid)
	}
	return h.do(ctx, "removeall", name, func(c *hdfs.Client, _ bool) error {
		return c.RemoveAll(h.abs(name))
	})
}

// Rename checks that newname is absent, then renames: colinmarc's Rename
// sends rename2 with OVERWRITE set, and the client offers no other rename.
// A file created at newname between the check and the rename is replaced;
// docs/storage.md explains why the commit protocol does not rely on Rename
// for arbitration.
func (h *hdfsFS) Rename(ctx context.Context, oldname, newname string) error {
	if err := checkName("rename", oldname); err != nil {
		return err
	}
	if err := checkName("rename", newname); err != nil {
		return err
	}
	what := oldname + " -> " + newname
	if oldname == "." || newname == "." {
		return fmt.Errorf("storage: rename %s: cannot rename the root: %w", what, fs.ErrInvalid)
	}
	op, np := h.abs(oldname), h.abs(newname)
	return h.do(ctx, "rename", what, func(c *hdfs.Client, uncertain bool) error {
		_, err := c.Stat(op)
		if errors.Is(err, fs.ErrNotExist) && uncertain {
			// The lost attempt may have moved it. Sources are private to
			// their writer, so newname existing now means it did.
			if _, nerr := c.Stat(np); nerr == nil {
				return nil
			}
		}
		if err != nil {
			return err
		}
		if _, err := c.Stat(np); err == nil {
			return fmt.Errorf("rename %s: %w", np, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return c.Rename(op, np)
	})
}

func (h *hdfsFS) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	open := h.open
	h.open = nil
	h.meta = nil
	h.mu.Unlock()
	for x := range open {
		x.close()
	}
	return nil
}

// cleanupContext bounds the removal of a failed file: it runs even when
// the File's own context is what failed it.
func (h *hdfsFS) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*h.opts.IOTimeout+h.opts.ConnectTimeout)
}

// Create makes the file with CreateFile (create flag CREATE only, no
// OVERWRITE, parent must exist): the NameNode fails it with
// FileAlreadyExistsException, or AlreadyBeingCreatedException while
// another client writes it, so exactly one concurrent creator wins.
func (h *hdfsFS) Create(ctx context.Context, name string) (File, error) {
	if err := checkName("create", name); err != nil {
		return nil, err
	}
	if name == "." {
		return nil, fmt.Errorf("storage: create %s: %w", name, fs.ErrExist)
	}
	p := h.abs(name)
	uncertain := false
	var err error
	for attempt := 1; ; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("storage: create %s: %w", name, cerr)
		}
		var x *hconn
		x, err = h.dial()
		if err == nil {
			var w *hdfs.FileWriter
			stop := context.AfterFunc(ctx, x.set.kill)
			w, err = x.c.CreateFile(p, h.replication, h.blockSize, 0o644)
			stop()
			if err == nil {
				f := &hdfsFile{h: h, x: x, w: w, name: name, path: p, ctx: ctx}
				f.stop = context.AfterFunc(ctx, x.set.kill)
				return f, nil
			}
			h.release(x)
			if uncertain && errors.Is(err, fs.ErrExist) {
				// The attempt whose answer was lost may have created it
				// (its client, now closed, holds the lease until it
				// expires): the name exists, but maybe not by someone
				// else's hand.
				return nil, mark(fmt.Errorf("storage: create %s: %w", name, err), ErrUncertain)
			}
		}
		k := classify(err)
		if k.transport {
			uncertain = true
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("storage: create %s: %w (after %w)", name, cerr, err)
		}
		if !k.retryable || attempt >= h.opts.Retry.Attempts {
			if uncertain {
				return nil, mark(opError("create", name, err), ErrUncertain)
			}
			return nil, opError("create", name, err)
		}
		h.opts.Logger.Warn("storage: retrying", "op", "create", "name", name, "attempt", attempt, "err", err)
		if werr := h.opts.Retry.wait(ctx, attempt); werr != nil {
			return nil, fmt.Errorf("storage: create %s: %w (after %w)", name, werr, err)
		}
	}
}

// hdfsFile is a File on HDFS.
type hdfsFile struct {
	h    *hdfsFS
	x    *hconn
	w    *hdfs.FileWriter
	name string
	path string
	ctx  context.Context
	stop func() bool
	err  error // sticky: the first write failure
	done bool
}

func (f *hdfsFile) Name() string { return f.name }

func (f *hdfsFile) Write(b []byte) (int, error) {
	if f.done {
		return 0, fmt.Errorf("storage: write %s: %w", f.name, fs.ErrClosed)
	}
	if f.err != nil {
		return 0, f.err
	}
	if len(b) == 0 {
		// colinmarc allocates a block on any Write, even an empty one,
		// and a block without a replica can never complete.
		return 0, nil
	}
	n, err := f.w.Write(b)
	if err != nil {
		if cerr := f.ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		f.err = opError("write", f.name, err)
		return n, f.err
	}
	return n, nil
}

// Close flushes the last packets, waits for their acks and calls complete.
// complete answering false (the NameNode waits for replicas) is retried
// with backoff, as the Java client does; the block stays committed, so a
// later complete can succeed. Any other failure removes the file.
func (f *hdfsFile) Close() error {
	if f.done {
		return fmt.Errorf("storage: close %s: %w", f.name, fs.ErrClosed)
	}
	f.done = true
	err := f.err
	if err == nil {
		werr := f.w.Close()
		for attempt := 1; errors.Is(werr, hdfs.ErrReplicating) && attempt < f.h.opts.Retry.Attempts; attempt++ {
			if f.h.opts.Retry.wait(f.ctx, attempt) != nil {
				break
			}
			werr = f.w.Close()
		}
		if werr == nil {
			f.stop()
			f.h.release(f.x)
			return nil
		}
		if cerr := f.ctx.Err(); cerr != nil {
			werr = fmt.Errorf("%w (%w)", cerr, werr)
		}
		err = opError("close", f.name, werr)
	}
	return errors.Join(err, f.discard())
}

func (f *hdfsFile) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	return f.discard()
}

// discard ends a failed or aborted write: cut the client's connections
// (so nothing can complete the file any more), let the writer stop its
// goroutines, then delete the name through the metadata client. Deleting
// does not need the lease.
func (f *hdfsFile) discard() error {
	f.stop()
	f.x.set.kill()
	f.w.Close() // fails on the dead connections; stops heartbeats
	f.h.release(f.x)
	ctx, cancel := f.h.cleanupContext(f.ctx)
	defer cancel()
	err := f.h.do(ctx, "abort", f.name, func(c *hdfs.Client, _ bool) error {
		if err := c.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: %s may stay visible, incomplete, until its lease expires: %w", f.name, err)
	}
	return nil
}

func (h *hdfsFS) Open(ctx context.Context, name string) (Reader, error) {
	if err := checkName("open", name); err != nil {
		return nil, err
	}
	r := &hdfsReader{h: h, name: name, path: h.abs(name), ctx: ctx}
	if err := r.reopen(); err != nil {
		return nil, err
	}
	r.size = r.r.Stat().Size()
	r.stop = context.AfterFunc(ctx, func() {
		r.xmu.Lock()
		defer r.xmu.Unlock()
		if r.x != nil {
			r.x.set.kill()
		}
	})
	return r, nil
}

// hdfsReader is a Reader on HDFS. colinmarc's FileReader seeks for ReadAt,
// so calls are serialised.
type hdfsReader struct {
	h    *hdfsFS
	name string
	path string
	ctx  context.Context
	size int64
	stop func() bool

	mu     sync.Mutex // serialises reads
	r      *hdfs.FileReader
	off    int64 // for Read
	pos    int64 // the FileReader's own offset, -1 if unknown
	closed bool

	xmu sync.Mutex // guards x for the cancel callback
	x   *hconn
}

// reopen (re)connects with a fresh client, with retries.
func (r *hdfsReader) reopen() error {
	var err error
	for attempt := 1; ; attempt++ {
		if cerr := r.ctx.Err(); cerr != nil {
			return fmt.Errorf("storage: open %s: %w", r.name, cerr)
		}
		var x *hconn
		x, err = r.h.dial()
		if err == nil {
			stop := context.AfterFunc(r.ctx, x.set.kill)
			var fr *hdfs.FileReader
			fr, err = x.c.Open(r.path)
			stop()
			if err == nil && fr.Stat().IsDir() {
				err = fmt.Errorf("is a directory: %w", fs.ErrInvalid)
			}
			if err == nil {
				r.xmu.Lock()
				old := r.x
				r.x, r.r, r.pos = x, fr, 0
				r.xmu.Unlock()
				if old != nil {
					r.h.release(old)
				}
				return nil
			}
			r.h.release(x)
		}
		k := classify(err)
		if !k.retryable || attempt >= r.h.opts.Retry.Attempts || r.ctx.Err() != nil {
			return opError("open", r.name, err)
		}
		r.h.opts.Logger.Warn("storage: retrying", "op", "open", "name", r.name, "attempt", attempt, "err", err)
		if werr := r.h.opts.Retry.wait(r.ctx, attempt); werr != nil {
			return fmt.Errorf("storage: open %s: %w (after %w)", r.name, werr, err)
		}
	}
}

func (r *hdfsReader) Size() int64 { return r.size }

func (r *hdfsReader) ReadAt(b []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.readAt(b, off)
}

func (r *hdfsReader) readAt(b []byte, off int64) (int, error) {
	if r.closed {
		return 0, fmt.Errorf("storage: read %s: %w", r.name, fs.ErrClosed)
	}
	if off < 0 {
		return 0, fmt.Errorf("storage: read %s at %d: negative offset: %w", r.name, off, fs.ErrInvalid)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := b
	if rest := r.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	for attempt := 1; ; attempt++ {
		if cerr := r.ctx.Err(); cerr != nil {
			return 0, fmt.Errorf("storage: read %s at %d: %w", r.name, off, cerr)
		}
		n, err := r.readFull(want, off)
		if err == nil {
			if len(want) < len(b) {
				return n, io.EOF
			}
			return n, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			// Fewer bytes than the file had at Open: a DataNode connection
			// that ended early looks like this, so it is retried.
			err = fmt.Errorf("short read: %d of %d bytes (connection dropped, or the file shrank): %w", n, len(want), io.ErrUnexpectedEOF)
		}
		if cerr := r.ctx.Err(); cerr != nil {
			return 0, fmt.Errorf("storage: read %s at %d: %w (after %w)", r.name, off, cerr, err)
		}
		if !classify(err).retryable || attempt >= r.h.opts.Retry.Attempts {
			return 0, opError("read", fmt.Sprintf("%s at %d", r.name, off), err)
		}
		r.h.opts.Logger.Warn("storage: retrying", "op", "read", "name", r.name, "offset", off, "attempt", attempt, "err", err)
		if werr := r.h.opts.Retry.wait(r.ctx, attempt); werr != nil {
			return 0, fmt.Errorf("storage: read %s at %d: %w (after %w)", r.name, off, werr, err)
		}
		r.r.Close()
		if rerr := r.reopen(); rerr != nil {
			return 0, rerr
		}
	}
}

// readFull reads len(b) bytes at off. colinmarc's ReadAt seeks on every
// call, and a seek to the current offset drops the DataNode stream, so
// sequential reads would reconnect each time: seek only when off moves.
func (r *hdfsReader) readFull(b []byte, off int64) (int, error) {
	if off != r.pos {
		if _, err := r.r.Seek(off, io.SeekStart); err != nil {
			r.pos = -1
			return 0, err
		}
		r.pos = off
	}
	n, err := io.ReadFull(r.r, b)
	r.pos += int64(n)
	return n, err
}

func (r *hdfsReader) Read(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(b) == 0 {
		return 0, nil
	}
	n, err := r.readAt(b, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *hdfsReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.stop()
	r.r.Close()
	r.xmu.Lock()
	x := r.x
	r.xmu.Unlock()
	r.h.release(x)
	return nil
}
