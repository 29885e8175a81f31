package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
)

// Position is how far one followed file has been shipped and acknowledged:
// the file (path, and device and inode, which survive a rename) and the
// byte offset just past the last acknowledged line.
type Position struct {
	// Path is the absolute path the ingester follows.
	Path string `json:"path"`
	// Dev and Inode identify the file that was being read; after a
	// rotation they may name the renamed predecessor of Path.
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
	// Offset is the byte offset in that file just past the last line
	// acknowledged by Kafka.
	Offset int64 `json:"offset"`
}

func (p Position) id() fileID { return fileID{dev: p.Dev, ino: p.Inode} }

// fileID identifies a file independently of its name.
type fileID struct{ dev, ino uint64 }

func idOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{dev: uint64(st.Dev), ino: st.Ino} //nolint:unconvert // Dev is uint64 on amd64, not on every GOARCH
	}
	return fileID{}
}

// stateVersion is the format version of the state file.
const stateVersion = 1

type stateDoc struct {
	Version int        `json:"version"`
	Files   []Position `json:"files"`
}

// stateStore is the state file: the acknowledged position of every
// followed path. It is written whole to a temporary file, synced and
// renamed over the old one, so a crash leaves either the old or the new
// content. A lock file (flock) keeps two ingesters from sharing it.
type stateStore struct {
	path  string
	lock  *os.File
	mu    sync.Mutex
	files map[string]Position
	dirty bool
}

// openState locks and reads the state file; a missing file is an empty
// state.
func openState(path string) (*stateStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("ingest: state dir: %w", err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ingest: state lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("ingest: state file %s is in use by another ingester (give each its own --state)", path)
		}
		return nil, fmt.Errorf("ingest: lock %s.lock: %w", path, err)
	}
	s := &stateStore{path: path, lock: lock, files: map[string]Position{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s, nil
	case err != nil:
		s.close()
		return nil, fmt.Errorf("ingest: read state: %w", err)
	}
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		s.close()
		return nil, fmt.Errorf("ingest: state file %s: %w", path, err)
	}
	if doc.Version != stateVersion {
		s.close()
		return nil, fmt.Errorf("ingest: state file %s: version %d, want %d", path, doc.Version, stateVersion)
	}
	for _, p := range doc.Files {
		s.files[p.Path] = p
	}
	return s, nil
}

func (s *stateStore) get(path string) (Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.files[path]
	return p, ok
}

// set records an acknowledged position; it is written by the next save.
func (s *stateStore) set(p Position) {
	s.mu.Lock()
	s.files[p.Path] = p
	s.dirty = true
	s.mu.Unlock()
}

// save writes the state if it changed since the last save.
func (s *stateStore) save() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	doc := stateDoc{Version: stateVersion, Files: make([]Position, 0, len(s.files))}
	for _, p := range s.files {
		doc.Files = append(doc.Files, p)
	}
	s.dirty = false
	s.mu.Unlock()
	sort.Slice(doc.Files, func(i, j int) bool { return doc.Files[i].Path < doc.Files[j].Path })
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("ingest: encode state: %w", err)
	}
	if err := writeAtomic(s.path, append(b, '\n')); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *stateStore) close() {
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}

// writeAtomic replaces name with b: temp file, fsync, rename, fsync dir.
func writeAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("ingest: write state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("ingest: write state %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("ingest: sync state %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ingest: close state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("ingest: rename state %s: %w", name, err)
	}
	if d, err := os.Open(filepath.Dir(name)); err == nil {
		d.Sync() // best effort: makes the rename durable on power loss
		d.Close()
	}
	return nil
}
