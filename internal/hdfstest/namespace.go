package hdfstest

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// blockState follows HDFS's block life cycle, minus replication.
type blockState int

const (
	// blockUC: allocated by addBlock (or reopened by append), being written.
	blockUC blockState = iota
	// blockCommitted: the client reported the final length (addBlock
	// previous / complete last) but the replica is not finalized with it yet.
	blockCommitted
	// blockComplete: committed and the DataNode holds a finalized replica of
	// exactly that length. Only complete blocks are visible to readers.
	blockComplete
)

// block is the NameNode's record of one block of a file.
type block struct {
	ID       uint64     `json:"id"`
	GenStamp uint64     `json:"gen"`
	NumBytes uint64     `json:"len"`
	State    blockState `json:"state"`

	// What the DataNode reported; rebuilt from the DataNode at start-up.
	replicaFinal bool
	replicaLen   uint64
}

// inode is a file or directory. The tree is serialized as the fsimage.
type inode struct {
	ID          uint64            `json:"id"`
	Dir         bool              `json:"dir,omitempty"`
	Children    map[string]*inode `json:"children,omitempty"`
	Perm        uint32            `json:"perm"`
	Owner       string            `json:"owner"`
	Group       string            `json:"group"`
	MTime       uint64            `json:"mtime"`
	ATime       uint64            `json:"atime"`
	Replication uint32            `json:"repl,omitempty"`
	BlockSize   uint64            `json:"bsize,omitempty"`
	Blocks      []*block          `json:"blocks,omitempty"`
	// Holder is the client name holding the lease while the file is under
	// construction; empty once complete.
	Holder string `json:"holder,omitempty"`

	parent *inode
	name   string
}

func (n *inode) underConstruction() bool { return n.Holder != "" }

// fullPath rebuilds the absolute path from the parent links.
func (n *inode) fullPath() string {
	if n.parent == nil {
		return "/"
	}
	var parts []string
	for x := n; x.parent != nil; x = x.parent {
		parts = append(parts, x.name)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/")
}

// visibleLength is what readers see: every block of a complete file, only
// the leading complete blocks of a file under construction.
func (n *inode) visibleLength() uint64 {
	var l uint64
	for _, b := range n.visibleBlocks() {
		l += b.NumBytes
	}
	return l
}

func (n *inode) visibleBlocks() []*block {
	if !n.underConstruction() {
		return n.Blocks
	}
	i := 0
	for i < len(n.Blocks) && n.Blocks[i].State == blockComplete {
		i++
	}
	return n.Blocks[:i]
}

func (n *inode) lastBlock() *block {
	if len(n.Blocks) == 0 {
		return nil
	}
	return n.Blocks[len(n.Blocks)-1]
}

func (n *inode) sortedChildren() []string {
	names := make([]string, 0, len(n.Children))
	for name := range n.Children {
		names = append(names, name)
	}
	// HDFS lists children in byte order of their UTF-8 names.
	sort.Strings(names)
	return names
}

// splitPath validates an absolute HDFS path and returns its components.
func splitPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, remote(ExcIllegalArgument, "Invalid path name %q: not absolute", p)
	}
	clean := path.Clean(p)
	if clean == "/" {
		return nil, nil
	}
	parts := strings.Split(clean[1:], "/")
	for _, c := range parts {
		if c == "." || c == ".." || strings.Contains(c, ":") {
			return nil, remote(ExcIllegalArgument, "Invalid path name %q", p)
		}
	}
	return parts, nil
}

// image is the on-disk form of the namespace.
type image struct {
	Version     int    `json:"version"`
	NextInode   uint64 `json:"next_inode"`
	NextBlock   uint64 `json:"next_block"`
	NextGen     uint64 `json:"next_gen"`
	ClusterPool string `json:"pool"`
	Root        *inode `json:"root"`
}

func loadImage(file string) (*image, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var img image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("hdfstest: decode %s: %w", file, err)
	}
	if img.Version != 1 || img.Root == nil || !img.Root.Dir {
		return nil, fmt.Errorf("hdfstest: %s: unsupported or empty image", file)
	}
	return &img, nil
}

// saveImage writes the image atomically (temp file + rename), so a crash
// mid-write leaves the previous image.
func saveImage(file string, img *image) error {
	b, err := json.Marshal(img)
	if err != nil {
		return fmt.Errorf("hdfstest: encode image: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("hdfstest: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("hdfstest: rename %s: %w", filepath.Base(tmp), err)
	}
	return nil
}
