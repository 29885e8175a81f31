package hdfstest

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

const (
	bytesPerChecksum = 512
	writePacketSize  = 64 * 1024
	// fsCapacity is the capacity getFsStats reports; the server has no real
	// quota, so a fixed, obviously fake figure beats statfs of a temp dir.
	fsCapacity = 1 << 40
	// createFlag bits of CreateRequestProto (CreateFlagProto).
	flagCreate    = 0x01
	flagOverwrite = 0x02
	flagNewBlock  = 0x20
)

// nameNode owns the namespace, the block map and the leases. Every RPC
// handler runs with mu held (see dispatch), which keeps the namespace code
// free of finer locking; the handlers do no network I/O.
type nameNode struct {
	log       *slog.Logger
	opts      *options
	dn        *dataNode
	faults    *Faults
	imageFile string // "" = namespace kept in memory only

	mu        sync.Mutex
	root      *inode
	inodes    map[uint64]*inode
	blockFile map[uint64]*inode // block ID -> file holding it
	nextInode uint64
	nextBlock uint64
	nextGen   uint64
	pool      string
	leases    map[string]time.Time // holder -> last renewal
}

func newNameNode(log *slog.Logger, opts *options, dn *dataNode, imageFile string) (*nameNode, error) {
	nn := &nameNode{
		log:       log,
		opts:      opts,
		dn:        dn,
		imageFile: imageFile,
		inodes:    map[uint64]*inode{},
		blockFile: map[uint64]*inode{},
		leases:    map[string]time.Time{},
	}
	img := &image{
		Version:     1,
		NextInode:   16386, // HDFS numbers inodes from 16385, the root
		NextBlock:   1 << 30,
		NextGen:     1001,
		ClusterPool: fmt.Sprintf("BP-hdfstest-127.0.0.1-%d", time.Now().UnixMilli()),
		Root:        &inode{ID: 16385, Dir: true, Perm: 0o755, Owner: "hdfs", Group: "supergroup", MTime: nowMillis()},
	}
	if imageFile != "" {
		loaded, err := loadImage(imageFile)
		switch {
		case err == nil:
			img = loaded
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	nn.root, nn.nextInode, nn.nextBlock, nn.nextGen, nn.pool = img.Root, img.NextInode, img.NextBlock, img.NextGen, img.ClusterPool
	replicas := dn.finalizedReplicas()
	now := time.Now()
	var index func(n *inode)
	index = func(n *inode) {
		nn.inodes[n.ID] = n
		if n.Dir && n.Children == nil {
			n.Children = map[string]*inode{}
		}
		for name, c := range n.Children {
			c.parent, c.name = n, name
			index(c)
		}
		for _, b := range n.Blocks {
			nn.blockFile[b.ID] = n
			if l, ok := replicas[b.ID]; ok {
				b.replicaFinal, b.replicaLen = true, l
				if b.State == blockCommitted && b.NumBytes == l {
					b.State = blockComplete
				}
			}
		}
		if n.underConstruction() {
			// The lease clock restarts with the NameNode, as in HDFS.
			nn.leases[n.Holder] = now
		}
	}
	index(nn.root)
	return nn, nn.persist()
}

func nowMillis() uint64 { return uint64(time.Now().UnixMilli()) }

// persist writes the image when the server keeps its namespace on disk.
func (nn *nameNode) persist() error {
	if nn.imageFile == "" {
		return nil
	}
	return saveImage(nn.imageFile, &image{
		Version: 1, NextInode: nn.nextInode, NextBlock: nn.nextBlock, NextGen: nn.nextGen,
		ClusterPool: nn.pool, Root: nn.root,
	})
}

// lookup returns the inode at p, or nil when it (or a parent) is missing.
func (nn *nameNode) lookup(p string) (*inode, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, err
	}
	n := nn.root
	for _, c := range parts {
		if !n.Dir {
			return nil, nil
		}
		if n = n.Children[c]; n == nil {
			return nil, nil
		}
	}
	return n, nil
}

// parentFor resolves the directory that will hold p, creating missing
// ancestors when createParent is set.
func (nn *nameNode) parentFor(p string, createParent bool, owner string) (*inode, string, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, "", err
	}
	if len(parts) == 0 {
		return nil, "", remote(ExcIO, "cannot create %s: it is the root", p)
	}
	n := nn.root
	for i, c := range parts[:len(parts)-1] {
		child := n.Children[c]
		if child == nil {
			if !createParent {
				return nil, "", remote(ExcFileNotFound, "Parent directory doesn't exist: /%s", strings.Join(parts[:i+1], "/"))
			}
			child = nn.newInode(n, c, true, 0o755, owner)
		}
		if !child.Dir {
			return nil, "", remote(ExcParentNotDirectory, "/%s (is not a directory)", strings.Join(parts[:i+1], "/"))
		}
		n = child
	}
	return n, parts[len(parts)-1], nil
}

func (nn *nameNode) newInode(parent *inode, name string, dir bool, perm uint32, owner string) *inode {
	now := nowMillis()
	n := &inode{ID: nn.nextInode, Dir: dir, Perm: perm & 0o7777, Owner: owner, Group: "supergroup", MTime: now, ATime: now, parent: parent, name: name}
	if dir {
		n.Children = map[string]*inode{}
	}
	nn.nextInode++
	nn.inodes[n.ID] = n
	parent.Children[name] = n
	parent.MTime = now
	return n
}

// remove unlinks n and frees its blocks and inodes, recursively.
func (nn *nameNode) remove(n *inode) {
	if n.parent != nil {
		delete(n.parent.Children, n.name)
		n.parent.MTime = nowMillis()
	}
	var free func(x *inode)
	free = func(x *inode) {
		delete(nn.inodes, x.ID)
		for _, c := range x.Children {
			free(c)
		}
		for _, b := range x.Blocks {
			delete(nn.blockFile, b.ID)
			nn.dn.deleteReplica(b.ID)
		}
	}
	free(n)
}

func (nn *nameNode) status(n *inode, name string) *pb.HdfsFileStatusProto {
	st := &pb.HdfsFileStatusProto{
		Path:             []byte(name),
		Permission:       &pb.FsPermissionProto{Perm: proto.Uint32(n.Perm)},
		Owner:            proto.String(n.Owner),
		Group:            proto.String(n.Group),
		ModificationTime: proto.Uint64(n.MTime),
		AccessTime:       proto.Uint64(n.ATime),
		FileId:           proto.Uint64(n.ID),
	}
	if n.Dir {
		st.FileType = pb.HdfsFileStatusProto_IS_DIR.Enum()
		st.Length = proto.Uint64(0)
		st.ChildrenNum = proto.Int32(int32(len(n.Children)))
	} else {
		st.FileType = pb.HdfsFileStatusProto_IS_FILE.Enum()
		st.Length = proto.Uint64(n.visibleLength())
		st.BlockReplication = proto.Uint32(n.Replication)
		st.Blocksize = proto.Uint64(n.BlockSize)
		st.ChildrenNum = proto.Int32(0)
	}
	return st
}

func (nn *nameNode) extended(b *block) *pb.ExtendedBlockProto {
	return &pb.ExtendedBlockProto{
		PoolId:          proto.String(nn.pool),
		BlockId:         proto.Uint64(b.ID),
		GenerationStamp: proto.Uint64(b.GenStamp),
		NumBytes:        proto.Uint64(b.NumBytes),
	}
}

func (nn *nameNode) located(b *block, offset uint64) *pb.LocatedBlockProto {
	return &pb.LocatedBlockProto{
		B:            nn.extended(b),
		Offset:       proto.Uint64(offset),
		Locs:         []*pb.DatanodeInfoProto{nn.dn.info()},
		Corrupt:      proto.Bool(false),
		BlockToken:   &pb.TokenProto{Identifier: []byte{}, Password: []byte{}, Kind: proto.String(""), Service: proto.String("")},
		IsCached:     []bool{false},
		StorageTypes: []pb.StorageTypeProto{pb.StorageTypeProto_DISK},
		StorageIDs:   []string{nn.dn.storageID},
	}
}

// fileForWrite finds the file a lease-holding call addresses: by inode ID
// when the client sends one (so a rename during the write does not matter,
// as in HDFS), else by path.
func (nn *nameNode) fileForWrite(src string, fileID uint64) (*inode, error) {
	var n *inode
	if fileID != 0 {
		n = nn.inodes[fileID]
	} else {
		var err error
		if n, err = nn.lookup(src); err != nil {
			return nil, err
		}
	}
	if n == nil || n.Dir {
		return nil, remote(ExcFileNotFound, "File does not exist: %s (inode %d)", src, fileID)
	}
	return n, nil
}

// checkLease verifies holder owns the lease on n and renews it.
func (nn *nameNode) checkLease(n *inode, src, holder string) error {
	if !n.underConstruction() {
		return remote(ExcLeaseExpired, "No lease on %s: File is not open for writing. Holder %s does not have any open files.", src, holder)
	}
	if n.Holder != holder {
		return remote(ExcLeaseExpired, "Lease mismatch on %s owned by %s but is accessed by %s", src, n.Holder, holder)
	}
	nn.leases[holder] = time.Now()
	return nil
}

// commit records the length the client reports for b (addBlock's previous or
// complete's last), completing it when the replica agrees.
func (nn *nameNode) commit(n *inode, b *block, reported *pb.ExtendedBlockProto) error {
	if reported.GetBlockId() != b.ID {
		return remote(ExcIO, "%s: client committed block %d but the last block is %d", n.fullPath(), reported.GetBlockId(), b.ID)
	}
	l := reported.GetNumBytes()
	if l > n.BlockSize {
		return remote(ExcIO, "%s: block %d length %d exceeds the block size %d", n.fullPath(), b.ID, l, n.BlockSize)
	}
	if b.State != blockUC {
		if b.NumBytes != l {
			return remote(ExcIO, "%s: block %d already committed with length %d, not %d", n.fullPath(), b.ID, b.NumBytes, l)
		}
		return nil
	}
	if b.replicaFinal && b.replicaLen != l {
		return remote(ExcIO, "%s: block %d: client reports %d bytes, the DataNode finalized %d", n.fullPath(), b.ID, l, b.replicaLen)
	}
	b.NumBytes = l
	b.State = blockCommitted
	if b.replicaFinal {
		b.State = blockComplete
	}
	return nil
}

// blockReceived is the DataNode's report of a finalized replica. It returns
// false for a block the namespace no longer knows (deleted meanwhile), so
// the DataNode can drop the replica.
func (nn *nameNode) blockReceived(id, length uint64) bool {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	n := nn.blockFile[id]
	if n == nil {
		return false
	}
	for _, b := range n.Blocks {
		if b.ID == id {
			b.replicaFinal, b.replicaLen = true, length
			if b.State == blockCommitted && b.NumBytes == length {
				b.State = blockComplete
			}
			return true
		}
	}
	return false
}

// replicaReopened is the DataNode's report that an append reopened the
// replica of block id.
func (nn *nameNode) replicaReopened(id uint64) {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	if n := nn.blockFile[id]; n != nil {
		for _, b := range n.Blocks {
			if b.ID == id {
				b.replicaFinal = false
			}
		}
	}
}

// leaseExpired reports whether holder stopped renewing for longer than d.
func (nn *nameNode) leaseExpired(holder string, d time.Duration) bool {
	last, ok := nn.leases[holder]
	return !ok || time.Since(last) > d
}

// recoverLease closes a file whose writer went away, as HDFS lease recovery
// does: the last block keeps what its replica holds (an empty or missing
// replica drops the block) and the file becomes complete.
func (nn *nameNode) recoverLease(n *inode) {
	nn.log.Info("hdfstest: recovering lease", "path", n.fullPath(), "holder", n.Holder)
	if b := n.lastBlock(); b != nil && b.State != blockComplete {
		l, ok := nn.dn.recoverReplica(b.ID)
		if ok && l > 0 {
			b.NumBytes, b.replicaFinal, b.replicaLen, b.State = l, true, l, blockComplete
		} else {
			n.Blocks = n.Blocks[:len(n.Blocks)-1]
			delete(nn.blockFile, b.ID)
			nn.dn.deleteReplica(b.ID)
		}
	}
	n.Holder = ""
	n.MTime = nowMillis()
}

// expireLeases recovers every file whose holder passed the hard limit.
func (nn *nameNode) expireLeases() {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	changed := false
	for _, n := range nn.inodes {
		if n.underConstruction() && nn.leaseExpired(n.Holder, nn.opts.leaseHard) {
			nn.recoverLease(n)
			changed = true
		}
	}
	if changed {
		if err := nn.persist(); err != nil {
			nn.log.Error("hdfstest: persist after lease recovery", "err", err)
		}
	}
}

// usedBytes sums the lengths of every block.
func (nn *nameNode) usedBytes() uint64 {
	var used uint64
	for _, n := range nn.inodes {
		for _, b := range n.Blocks {
			used += b.NumBytes
		}
	}
	return used
}

// cleanPath is used for messages and comparisons of two client paths.
func cleanPath(p string) string { return path.Clean(p) }
