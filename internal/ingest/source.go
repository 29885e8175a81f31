package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// arenaSize is the size of the read arenas (see splitter).
const arenaSize = 1 << 20

// input ships one input: "-" for Options.Stdin, otherwise a file path.
func (g *Ingester) input(ctx, prodCtx context.Context, name string) error {
	if name == "-" {
		return g.stream(ctx, prodCtx, "stdin", g.o.Stdin)
	}
	return g.file(ctx, prodCtx, name)
}

// stream ships a stream to its end. There is no position to persist.
func (g *Ingester) stream(ctx, prodCtx context.Context, name string, r io.Reader) error {
	if r == nil {
		return errors.New("ingest: no stdin to read")
	}
	sh := g.newShipper(prodCtx, name, nil)
	defer sh.seal()
	sp := newSplitter(g.o.MaxLineSize, g.o.LongLineKeep, arenaSize)
	cr := &ctxReader{r: r}
	empty := 0
	for {
		n, err := cr.read(ctx, sp)
		g.stats.bytes.Add(int64(n))
		for l, ok := sp.next(); ok; l, ok = sp.next() {
			sh.ship(l)
		}
		switch {
		case ctx.Err() != nil:
			if p := sp.pending(); p > 0 {
				g.log.Warn("stopped with an incomplete line unsent", "input", name, "bytes", p)
			}
			return nil
		case errors.Is(err, io.EOF):
			if l, ok := sp.final(); ok {
				sh.ship(l)
			}
			return nil
		case err != nil:
			return fmt.Errorf("ingest: read %s: %w", name, err)
		case n == 0:
			if empty++; empty > 100 {
				return fmt.Errorf("ingest: read %s: %w", name, io.ErrNoProgress)
			}
		default:
			empty = 0
		}
	}
}

// ctxReader makes a blocking stream read give up when ctx is done. The
// read goes on in its goroutine, which owns the arena space it was given;
// the splitter is not used again after a cancelled read.
type ctxReader struct {
	r    io.Reader
	res  chan readResult
	busy bool
}

type readResult struct {
	n   int
	err error
}

func (c *ctxReader) read(ctx context.Context, sp *splitter) (int, error) {
	if f, ok := c.r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			return sp.readFrom(f) // never blocks for long
		}
	}
	if c.res == nil {
		c.res = make(chan readResult, 1)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	go func() {
		n, err := sp.readFrom(c.r)
		c.res <- readResult{n, err}
	}()
	select {
	case r := <-c.res:
		return r.n, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// tail reads one file path, following it when Options.Follow is set.
type tail struct {
	g    *Ingester
	ctx  context.Context
	path string // as given
	abs  string // key of the state
	f    *os.File
	id   fileID
	off  int64 // offset of the next byte read from f
	sp   *splitter
	sh   *shipper
}

// file ships the file at name: from its persisted position when there is
// one, to its end (or, following, until ctx is done).
func (g *Ingester) file(ctx, prodCtx context.Context, name string) error {
	abs, err := filepath.Abs(name)
	if err != nil {
		return fmt.Errorf("ingest: %s: %w", name, err)
	}
	t := &tail{g: g, ctx: ctx, path: name, abs: abs, sp: newSplitter(g.o.MaxLineSize, g.o.LongLineKeep, arenaSize)}
	var onCommit func(Position)
	if g.state != nil {
		onCommit = g.state.set
	}
	t.sh = g.newShipper(prodCtx, name, onCommit)
	defer func() {
		t.sh.seal()
		if t.f != nil {
			t.f.Close()
		}
	}()
	f, err := t.open()
	if f == nil || err != nil {
		return err
	}
	if err := t.resume(f); err != nil {
		return err
	}
	for {
		if err := t.drain(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			t.stopped()
			return nil
		}
		t.sh.seal() // at the end of the data: let what was read be acknowledged
		if !t.g.o.Follow {
			t.finalLine()
			return nil
		}
		select {
		case <-ctx.Done():
			t.stopped()
			return nil
		case <-time.After(g.o.PollInterval):
		}
		if err := t.check(); err != nil {
			return err
		}
	}
}

// open opens the path; following, it waits for the file to appear.
func (t *tail) open() (*os.File, error) {
	for {
		f, err := os.Open(t.path)
		if err == nil {
			return f, nil
		}
		if !t.g.o.Follow || !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		t.g.log.Info("waiting for the file to appear", "path", t.path)
		select {
		case <-t.ctx.Done():
			return nil, nil
		case <-time.After(t.g.o.PollInterval):
		}
	}
}

// resume starts reading f at the persisted position. When the state names
// another file (the path was rotated while the ingester was stopped), the
// rest of that file is read first if it can still be found in the same
// directory under another name.
func (t *tail) resume(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("ingest: stat %s: %w", t.path, err)
	}
	id := idOf(fi)
	var saved Position
	ok := false
	if t.g.state != nil {
		saved, ok = t.g.state.get(t.abs)
	}
	switch {
	case !ok:
		return t.switchTo(f, t.path, id, 0)
	case saved.id() == id && fi.Size() >= saved.Offset:
		t.g.log.Info("resuming", "path", t.path, "offset", saved.Offset)
		return t.switchTo(f, t.path, id, saved.Offset)
	case saved.id() == id:
		t.g.log.Warn("file shrank while stopped: truncated, reading it from the start", "path", t.path, "size", fi.Size(), "offset", saved.Offset)
		return t.switchTo(f, t.path, id, 0)
	}
	old, oerr := findFile(filepath.Dir(t.abs), saved.id())
	if oerr != nil || old == "" {
		t.g.log.Warn("file was replaced while stopped and its predecessor is gone: lines written to it after the saved offset were not shipped",
			"path", t.path, "offset", saved.Offset, "err", oerr)
		return t.switchTo(f, t.path, id, 0)
	}
	of, err := os.Open(old)
	if err != nil {
		t.g.log.Warn("cannot open the rotated predecessor", "path", old, "err", err)
		return t.switchTo(f, t.path, id, 0)
	}
	t.g.log.Info("reading the rest of the rotated predecessor first", "path", t.path, "predecessor", old, "offset", saved.Offset)
	if err := t.switchTo(of, old, saved.id(), saved.Offset); err != nil {
		f.Close()
		return err
	}
	if err := t.drain(); err != nil {
		f.Close()
		return err
	}
	if t.ctx.Err() != nil {
		f.Close()
		t.stopped()
		return nil
	}
	t.finalLine()
	return t.switchTo(f, t.path, id, 0)
}

// findFile looks in dir for the file with id (a renamed predecessor).
func findFile(dir string, id fileID) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("ingest: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err == nil && idOf(fi) == id {
			return filepath.Join(dir, e.Name()), nil
		}
	}
	return "", nil
}

// switchTo makes f (named name, with id) the file read, from off.
func (t *tail) switchTo(f *os.File, name string, id fileID, off int64) error {
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("ingest: seek %s: %w", t.path, err)
		}
	}
	if t.f != nil {
		t.f.Close()
	}
	t.f, t.id, t.off = f, id, off
	t.sp.reset(off)
	t.sh.src = name
	t.sh.mark(Position{Path: t.abs, Dev: id.dev, Inode: id.ino, Offset: off})
	return nil
}

// drain reads f to its current end, shipping every complete line.
func (t *tail) drain() error {
	for t.ctx.Err() == nil {
		n, err := t.sp.readFrom(t.f)
		t.off += int64(n)
		t.g.stats.bytes.Add(int64(n))
		for l, ok := t.sp.next(); ok; l, ok = t.sp.next() {
			t.sh.ship(l)
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ingest: read %s: %w", t.path, err)
		}
	}
	return nil
}

// finalLine ships an unterminated last line: the file is complete (not
// followed, or rotated away).
func (t *tail) finalLine() {
	if l, ok := t.sp.final(); ok {
		t.sh.ship(l)
	}
	t.sh.seal()
}

func (t *tail) stopped() {
	if p := t.sp.pending(); p > 0 {
		t.g.log.Info("stopped before the end of an incomplete line; it is read again on restart", "path", t.path, "bytes", p)
	}
}

// check looks for rotation (the path names another file) and truncation
// (the file shrank below what was read).
func (t *tail) check() error {
	fi, err := os.Stat(t.path)
	if err == nil && idOf(fi) != t.id {
		// Rotated: finish the old file (a writer may have added to it
		// since the last read), then switch.
		if err := t.drain(); err != nil {
			return err
		}
		if t.ctx.Err() != nil {
			return nil
		}
		t.finalLine()
		nf, err := os.Open(t.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // gone again; keep the old file and look later
			}
			return fmt.Errorf("ingest: %w", err)
		}
		nfi, err := nf.Stat()
		if err != nil {
			nf.Close()
			return fmt.Errorf("ingest: stat %s: %w", t.path, err)
		}
		t.g.log.Info("file rotated: switching to the new file", "path", t.path, "old_inode", t.id.ino, "new_inode", idOf(nfi).ino)
		return t.switchTo(nf, t.path, idOf(nfi), 0)
	}
	// Missing path: renamed away and not yet recreated; the old file may
	// still be written to, so keep reading it.
	ofi, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("ingest: stat %s: %w", t.path, err)
	}
	if ofi.Size() < t.off {
		if p := t.sp.pending(); p > 0 {
			t.g.log.Warn("truncated file had an incomplete last line; it is lost with the truncation", "path", t.path, "bytes", p)
		}
		t.g.log.Warn("file truncated: reading it again from the start", "path", t.path, "size", ofi.Size(), "offset", t.off)
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("ingest: seek %s: %w", t.path, err)
		}
		t.off = 0
		t.sp.reset(0)
		t.sh.mark(Position{Path: t.abs, Dev: t.id.dev, Inode: t.id.ino, Offset: 0})
	}
	return nil
}
