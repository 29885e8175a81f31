// Package storage is the one file-system interface under lambdalog's master
// dataset: the exactly-once consumer writes Parquet files and its commit log
// through it, the batch jobs read them back. Two backends implement it: the
// local file system (file:///abs/path, the embedded default) and HDFS
// (hdfs://nn1:8020,nn2:8020/path). The guarantees each call gives on each
// backend, which the consumer's exactly-once proof rests on, are written down
// in docs/storage.md.
//
// Names are slash-separated, relative to the root the URL names, and must
// satisfy io/fs.ValidPath ("." is the root; no leading slash, no "..", no
// empty elements). Errors are classified with errors.Is: fs.ErrExist,
// fs.ErrNotExist, fs.ErrInvalid, ErrRetryable (transient: try again) and
// ErrUncertain (an earlier attempt failed without an answer, so the outcome
// of the call is not known).
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// FS is a file system rooted at the directory a URL names. Implementations
// are safe for concurrent use.
type FS interface {
	// Create creates name, which must not exist, and opens it for writing.
	// It fails with fs.ErrExist if name exists (also if another writer is
	// creating it at the same moment: exactly one Create wins) and with
	// fs.ErrNotExist if the parent directory does not exist. The name is
	// reserved as soon as Create returns; its content is defined only once
	// File.Close returns nil. ctx bounds the whole life of the File.
	Create(ctx context.Context, name string) (File, error)
	// Open opens name for reading. ctx bounds the whole life of the Reader.
	Open(ctx context.Context, name string) (Reader, error)
	// Stat describes name.
	Stat(ctx context.Context, name string) (Entry, error)
	// ReadDir lists the directory name, sorted by name.
	ReadDir(ctx context.Context, name string) ([]Entry, error)
	// Rename moves oldname to newname, failing with fs.ErrExist if newname
	// exists and fs.ErrNotExist if oldname does not. See docs/storage.md for
	// the race window on HDFS.
	Rename(ctx context.Context, oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(ctx context.Context, name string) error
	// RemoveAll removes name and everything below it; a missing name is not
	// an error.
	RemoveAll(ctx context.Context, name string) error
	// MkdirAll creates the directory name and any missing parents; an
	// existing directory is not an error.
	MkdirAll(ctx context.Context, name string) error
	// Close releases the connections of the FS. Files and Readers still
	// open fail afterwards.
	Close() error
}

// File is a file being written. It is not safe for concurrent use.
type File interface {
	io.Writer
	// Close flushes the data, makes it durable (fsync on local disk, all
	// DataNode acks and complete on HDFS) and ends the write. If Close
	// fails, the content is undefined: the File removes the name (the
	// returned error says if that failed too) and the caller writes again.
	Close() error
	// Abort discards the file: it removes the name and ends the write. It
	// is a no-op after a successful Close.
	Abort() error
	// Name is the name the File was created with.
	Name() string
}

// Reader reads a complete file. ReadAt may be called concurrently; for
// Parquet wrap it in io.NewSectionReader(r, 0, r.Size()), which adds Seek.
type Reader interface {
	io.Reader
	io.ReaderAt
	io.Closer
	// Size is the length of the file when it was opened.
	Size() int64
}

// Entry describes a file or directory.
type Entry struct {
	// Name is the base name ("." for the root).
	Name string
	// Size is the length in bytes (0 for directories).
	Size int64
	// ModTime is the last modification time.
	ModTime time.Time
	// IsDir reports whether the entry is a directory.
	IsDir bool
}

var (
	// ErrRetryable marks transient failures (timeouts, refused or reset
	// connections, HDFS RetriableException, StandbyException,
	// SafeModeException, DataNode pipeline errors): the same call may
	// succeed later. Backends already retried it Options.Retry times.
	ErrRetryable = errors.New("transient storage failure")
	// ErrUncertain marks a result reached after an attempt that failed
	// without an answer (a timeout after the request was sent): for
	// example Create reports fs.ErrExist together with ErrUncertain when
	// the name may have been created by that lost attempt.
	ErrUncertain = errors.New("outcome of an earlier attempt unknown")
)

// IsRetryable reports whether err is a transient failure.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// classified attaches classes to an error without changing its message, so
// errors.Is finds both the cause and the classes.
type classified struct {
	err     error
	classes []error
}

func (c *classified) Error() string { return c.err.Error() }

func (c *classified) Unwrap() []error { return append([]error{c.err}, c.classes...) }

// mark returns err marked with the classes; nil stays nil.
func mark(err error, classes ...error) error {
	if err == nil || len(classes) == 0 {
		return err
	}
	return &classified{err: err, classes: classes}
}

// Options configures Open. The zero value works for local disk and for an
// unsecured HDFS.
type Options struct {
	// Logger receives retries and recoveries; nil discards them.
	Logger *slog.Logger

	// User is the HDFS user (simple authentication). Empty: the current
	// OS user. Ignored with Kerberos, where the principal decides.
	User string
	// Kerberos enables Kerberos authentication to HDFS when non-nil.
	Kerberos *KerberosOptions
	// ConnectTimeout bounds each TCP connect (default 10s).
	ConnectTimeout time.Duration
	// IOTimeout bounds each read or write on an HDFS connection: a peer
	// silent for longer fails the call (default 60s).
	IOTimeout time.Duration
	// Retry bounds the retries of transient HDFS failures.
	Retry RetryPolicy
	// Replication and BlockSize for files created on HDFS; 0 takes the
	// NameNode's defaults.
	Replication int
	// BlockSize is the HDFS block size of new files; 0 takes the default.
	BlockSize int64
}

// RetryPolicy is bounded exponential backoff: attempt n waits
// min(Initial*2^(n-1), Max) with ±20% jitter.
type RetryPolicy struct {
	// Attempts is the total number of tries (default 4; 1 = no retry).
	Attempts int
	// Initial is the first wait (default 100ms).
	Initial time.Duration
	// Max caps a wait (default 5s).
	Max time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 60 * time.Second
	}
	if o.Retry.Attempts <= 0 {
		o.Retry.Attempts = 4
	}
	if o.Retry.Initial <= 0 {
		o.Retry.Initial = 100 * time.Millisecond
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 5 * time.Second
	}
	return o
}

// Open returns the FS rawURL names, creating its root directory if missing:
//
//	file:///abs/path              local disk
//	hdfs://host:port/path         HDFS
//	hdfs://nn1:8020,nn2:8020/path HDFS with NameNode HA (tried in order)
//
// Relative paths (file://./x, file:x, a bare path) are refused with a
// message saying how to write them; resolve them with filepath.Abs first.
func Open(ctx context.Context, rawURL string, opts Options) (FS, error) {
	opts = opts.withDefaults()
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("storage: open %q: %w: want a URL such as file:///var/lib/lambdalog or hdfs://namenode:8020/lambdalog (a bare or relative path must be made absolute, e.g. file://$PWD/data)", rawURL, fs.ErrInvalid)
	}
	switch strings.ToLower(scheme) {
	case "file":
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("storage: open %q: %w: %v", rawURL, fs.ErrInvalid, err)
		}
		if u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("storage: open %q: %w: a file URL needs an absolute path and three slashes, e.g. file:///var/lib/lambdalog (for a relative directory use file://$PWD/%s)", rawURL, fs.ErrInvalid, strings.TrimPrefix(rest, "./"))
		}
		return openLocal(ctx, u.Path, opts, localHooks{})
	case "hdfs":
		hosts, path, _ := strings.Cut(rest, "/")
		if hosts == "" {
			return nil, fmt.Errorf("storage: open %q: %w: an hdfs URL needs the NameNode address(es), e.g. hdfs://nn1:8020,nn2:8020/lambdalog", rawURL, fs.ErrInvalid)
		}
		var addrs []string
		for _, h := range strings.Split(hosts, ",") {
			if h = strings.TrimSpace(h); h == "" {
				continue
			}
			if !strings.Contains(h, ":") {
				h += ":8020" // the NameNode's default RPC port
			}
			addrs = append(addrs, h)
		}
		p, err := url.PathUnescape(path)
		if err != nil {
			return nil, fmt.Errorf("storage: open %q: %w: %v", rawURL, fs.ErrInvalid, err)
		}
		return openHDFS(ctx, addrs, "/"+strings.Trim(p, "/"), opts)
	default:
		return nil, fmt.Errorf("storage: open %q: %w: unknown scheme %q (want file or hdfs)", rawURL, fs.ErrInvalid, scheme)
	}
}

// checkName validates a name given to an FS method.
func checkName(op, name string) error {
	if !fs.ValidPath(name) {
		return fmt.Errorf("storage: %s %q: %w: names are slash-separated, relative to the root, without '..' or empty elements", op, name, fs.ErrInvalid)
	}
	return nil
}

// baseName is the last element of a valid name.
func baseName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}
