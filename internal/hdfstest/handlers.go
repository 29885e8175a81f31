package hdfstest

import (
	"strings"
	"time"

	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

// call is one decoded ClientNamenodeProtocol request.
type call struct {
	method string
	user   string // effective user from the connection context
}

// handler runs one RPC method; mutates says whether the image must be
// written afterwards.
type handler struct {
	newReq  func() proto.Message
	run     func(c *call, req proto.Message) (proto.Message, error)
	mutates bool
}

func rpc[R any, PR interface {
	*R
	proto.Message
}](mutates bool, fn func(*call, PR) (proto.Message, error)) handler {
	return handler{
		newReq:  func() proto.Message { return PR(new(R)) },
		run:     func(c *call, m proto.Message) (proto.Message, error) { return fn(c, m.(PR)) },
		mutates: mutates,
	}
}

// handlers lists the ClientNamenodeProtocol methods this NameNode serves.
func (nn *nameNode) handlers() map[string]handler {
	return map[string]handler{
		"getFileInfo":            rpc(false, nn.getFileInfo),
		"getListing":             rpc(false, nn.getListing),
		"mkdirs":                 rpc(true, nn.mkdirs),
		"create":                 rpc(true, nn.create),
		"append":                 rpc(true, nn.append),
		"addBlock":               rpc(true, nn.addBlock),
		"abandonBlock":           rpc(true, nn.abandonBlock),
		"updateBlockForPipeline": rpc(false, nn.updateBlockForPipeline),
		"complete":               rpc(true, nn.complete),
		"rename":                 rpc(true, nn.rename),
		"rename2":                rpc(true, nn.rename2),
		"delete":                 rpc(true, nn.delete),
		"getBlockLocations":      rpc(false, nn.getBlockLocations),
		"getServerDefaults":      rpc(false, nn.getServerDefaults),
		"renewLease":             rpc(false, nn.renewLease),
		"getFsStats":             rpc(false, nn.getFsStats),
		"getContentSummary":      rpc(false, nn.getContentSummary),
		"setPermission":          rpc(true, nn.setPermission),
		"setOwner":               rpc(true, nn.setOwner),
		"setTimes":               rpc(true, nn.setTimes),
		"truncate":               rpc(true, nn.truncate),
	}
}

func (nn *nameNode) getFileInfo(_ *call, req *pb.GetFileInfoRequestProto) (proto.Message, error) {
	n, err := nn.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	resp := &pb.GetFileInfoResponseProto{}
	if n != nil {
		// HDFS leaves the name empty here: the client knows what it asked for.
		resp.Fs = nn.status(n, "")
	}
	return resp, nil
}

func (nn *nameNode) getListing(_ *call, req *pb.GetListingRequestProto) (proto.Message, error) {
	n, err := nn.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	resp := &pb.GetListingResponseProto{}
	switch {
	case n == nil:
		// No dirList: the client reports the directory as missing.
	case !n.Dir:
		resp.DirList = &pb.DirectoryListingProto{PartialListing: []*pb.HdfsFileStatusProto{nn.status(n, "")}, RemainingEntries: proto.Uint32(0)}
	default:
		after := string(req.GetStartAfter())
		list := &pb.DirectoryListingProto{RemainingEntries: proto.Uint32(0)}
		names := n.sortedChildren()
		for i, name := range names {
			if name <= after {
				continue
			}
			if len(list.PartialListing) == nn.opts.listingLimit {
				list.RemainingEntries = proto.Uint32(uint32(len(names) - i))
				break
			}
			st := nn.status(n.Children[name], name)
			if c := n.Children[name]; req.GetNeedLocation() && !c.Dir {
				st.Locations = nn.locatedBlocks(c, 0, c.visibleLength())
			}
			list.PartialListing = append(list.PartialListing, st)
		}
		resp.DirList = list
	}
	return resp, nil
}

func (nn *nameNode) mkdirs(c *call, req *pb.MkdirsRequestProto) (proto.Message, error) {
	n, err := nn.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if n != nil {
		if !n.Dir {
			return nil, remote(ExcFileAlreadyExists, "Path is not a directory: %s", req.GetSrc())
		}
		return &pb.MkdirsResponseProto{Result: proto.Bool(true)}, nil
	}
	parent, name, err := nn.parentFor(req.GetSrc(), req.GetCreateParent(), c.user)
	if err != nil {
		return nil, err
	}
	nn.newInode(parent, name, true, req.GetMasked().GetPerm(), c.user)
	return &pb.MkdirsResponseProto{Result: proto.Bool(true)}, nil
}

func (nn *nameNode) create(c *call, req *pb.CreateRequestProto) (proto.Message, error) {
	src, holder, flag := req.GetSrc(), req.GetClientName(), req.GetCreateFlag()
	bs := req.GetBlockSize()
	if bs == 0 || bs%bytesPerChecksum != 0 {
		return nil, remote(ExcIO, "Invalid block size %d for %s: must be a positive multiple of %d", bs, src, bytesPerChecksum)
	}
	n, err := nn.lookup(src)
	if err != nil {
		return nil, err
	}
	if n != nil {
		if n.Dir {
			return nil, remote(ExcFileAlreadyExists, "%s already exists as a directory", src)
		}
		if flag&flagOverwrite == 0 {
			if n.underConstruction() {
				if n.Holder == holder {
					return nil, remote(ExcAlreadyBeingCreated, "Failed to CREATE_FILE %s for %s: current leaseholder is trying to recreate file.", src, holder)
				}
				if !nn.leaseExpired(n.Holder, nn.opts.leaseSoft) {
					return nil, remote(ExcAlreadyBeingCreated, "Failed to CREATE_FILE %s for %s because this file lease is currently owned by %s", src, holder, n.Holder)
				}
				nn.recoverLease(n)
			}
			return nil, remote(ExcFileAlreadyExists, "%s for client %s already exists", src, holder)
		}
		nn.remove(n)
	} else if flag&flagCreate == 0 {
		return nil, remote(ExcFileNotFound, "Can't overwrite non-existent %s for client %s", src, holder)
	}
	parent, name, err := nn.parentFor(src, req.GetCreateParent(), c.user)
	if err != nil {
		return nil, err
	}
	f := nn.newInode(parent, name, false, req.GetMasked().GetPerm(), c.user)
	f.Replication, f.BlockSize, f.Holder = req.GetReplication(), bs, holder
	if f.Replication == 0 {
		f.Replication = uint32(nn.opts.replication)
	}
	nn.leases[holder] = time.Now()
	return &pb.CreateResponseProto{Fs: nn.status(f, "")}, nil
}

func (nn *nameNode) append(_ *call, req *pb.AppendRequestProto) (proto.Message, error) {
	src, holder := req.GetSrc(), req.GetClientName()
	n, err := nn.lookup(src)
	if err != nil {
		return nil, err
	}
	if n == nil || n.Dir {
		return nil, remote(ExcFileNotFound, "Failed to append to non-existent file %s for client %s", src, holder)
	}
	if n.underConstruction() {
		if n.Holder == holder || !nn.leaseExpired(n.Holder, nn.opts.leaseSoft) {
			return nil, remote(ExcAlreadyBeingCreated, "Failed to APPEND_FILE %s for %s because this file lease is currently owned by %s", src, holder, n.Holder)
		}
		nn.recoverLease(n)
	}
	n.Holder = holder
	nn.leases[holder] = time.Now()
	resp := &pb.AppendResponseProto{Stat: nn.status(n, "")}
	if b := n.lastBlock(); b != nil && b.NumBytes < n.BlockSize && req.GetFlag()&flagNewBlock == 0 {
		// Reopen the partial last block; the client appends to its replica.
		var off uint64
		for _, x := range n.Blocks[:len(n.Blocks)-1] {
			off += x.NumBytes
		}
		b.State = blockUC
		resp.Block = nn.located(b, off)
	}
	return resp, nil
}

func (nn *nameNode) addBlock(_ *call, req *pb.AddBlockRequestProto) (proto.Message, error) {
	src, holder, prev := req.GetSrc(), req.GetClientName(), req.GetPrevious()
	n, err := nn.fileForWrite(src, req.GetFileId())
	if err != nil {
		return nil, err
	}
	if err := nn.checkLease(n, src, holder); err != nil {
		return nil, err
	}
	last := n.lastBlock()
	// A retried addBlock whose answer was lost: previous is the block before
	// the one already allocated, which has received nothing yet.
	if prev != nil && last != nil && last.ID != prev.GetBlockId() && last.State == blockUC && !last.replicaFinal &&
		len(n.Blocks) >= 2 && n.Blocks[len(n.Blocks)-2].ID == prev.GetBlockId() {
		return &pb.AddBlockResponseProto{Block: nn.located(last, n.visibleLengthBefore(len(n.Blocks)-1))}, nil
	}
	switch {
	case prev != nil && last == nil:
		return nil, remote(ExcIO, "%s: previous block %d given but the file has no blocks", src, prev.GetBlockId())
	case prev != nil:
		if err := nn.commit(n, last, prev); err != nil {
			return nil, err
		}
	case last != nil && last.State == blockUC:
		return nil, remote(ExcIO, "%s: last block %d is still being written; addBlock must name it as previous", src, last.ID)
	}
	for _, b := range n.Blocks[:max(len(n.Blocks)-1, 0)] {
		if b.State != blockComplete {
			return nil, remote("org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException", "Not replicated yet: %s block %d", src, b.ID)
		}
	}
	b := &block{ID: nn.nextBlock, GenStamp: nn.nextGen, State: blockUC}
	nn.nextBlock++
	nn.nextGen++
	off := n.visibleLengthBefore(len(n.Blocks))
	n.Blocks = append(n.Blocks, b)
	nn.blockFile[b.ID] = n
	return &pb.AddBlockResponseProto{Block: nn.located(b, off)}, nil
}

// visibleLengthBefore sums the lengths of the first i blocks.
func (n *inode) visibleLengthBefore(i int) uint64 {
	var off uint64
	for _, b := range n.Blocks[:i] {
		off += b.NumBytes
	}
	return off
}

func (nn *nameNode) abandonBlock(_ *call, req *pb.AbandonBlockRequestProto) (proto.Message, error) {
	src := req.GetSrc()
	n, err := nn.fileForWrite(src, req.GetFileId())
	if err != nil {
		return nil, err
	}
	if err := nn.checkLease(n, src, req.GetHolder()); err != nil {
		return nil, err
	}
	last := n.lastBlock()
	if last == nil || last.ID != req.GetB().GetBlockId() || last.State != blockUC {
		return nil, remote(ExcIO, "%s: block %d is not the block under construction", src, req.GetB().GetBlockId())
	}
	n.Blocks = n.Blocks[:len(n.Blocks)-1]
	delete(nn.blockFile, last.ID)
	nn.dn.deleteReplica(last.ID)
	return &pb.AbandonBlockResponseProto{}, nil
}

func (nn *nameNode) updateBlockForPipeline(_ *call, req *pb.UpdateBlockForPipelineRequestProto) (proto.Message, error) {
	id := req.GetBlock().GetBlockId()
	n := nn.blockFile[id]
	if n == nil {
		return nil, remote(ExcIO, "block %d does not exist", id)
	}
	if err := nn.checkLease(n, n.fullPath(), req.GetClientName()); err != nil {
		return nil, err
	}
	for i, b := range n.Blocks {
		if b.ID == id {
			// With one replica there is no pipeline to recover, so the
			// generation stamp stays; HDFS would hand out a new one.
			return &pb.UpdateBlockForPipelineResponseProto{Block: nn.located(b, n.visibleLengthBefore(i))}, nil
		}
	}
	return nil, remote(ExcIO, "block %d does not exist", id)
}

func (nn *nameNode) complete(c *call, req *pb.CompleteRequestProto) (proto.Message, error) {
	src, holder := req.GetSrc(), req.GetClientName()
	n, err := nn.fileForWrite(src, req.GetFileId())
	if err != nil {
		return nil, err
	}
	if err := nn.checkLease(n, src, holder); err != nil {
		// A retry of a complete whose answer was lost (HDFS-3031): the file
		// is closed and ends with the block the client names.
		if last := n.lastBlock(); !n.underConstruction() && req.GetLast() != nil && last != nil &&
			last.ID == req.GetLast().GetBlockId() && last.GenStamp == req.GetLast().GetGenerationStamp() {
			return &pb.CompleteResponseProto{Result: proto.Bool(true)}, nil
		}
		return nil, err
	}
	if last := req.GetLast(); last != nil {
		b := n.lastBlock()
		if b == nil {
			return nil, remote(ExcIO, "%s: complete names block %d but the file has no blocks", src, last.GetBlockId())
		}
		if err := nn.commit(n, b, last); err != nil {
			return nil, err
		}
	}
	if nn.faults.refuseComplete() {
		// As if the last block's replication were pending: it stays
		// committed, invisible to readers, until a later complete.
		if b := n.lastBlock(); b != nil && b.State == blockComplete {
			b.State = blockCommitted
		}
		nn.log.Info("hdfstest: fault: refusing complete", "path", src)
		return &pb.CompleteResponseProto{Result: proto.Bool(false)}, nil
	}
	for _, b := range n.Blocks {
		if b.State == blockCommitted && b.replicaFinal && b.replicaLen == b.NumBytes {
			b.State = blockComplete
		}
		if b.State != blockComplete {
			return &pb.CompleteResponseProto{Result: proto.Bool(false)}, nil
		}
	}
	n.Holder = ""
	n.MTime = nowMillis()
	return &pb.CompleteResponseProto{Result: proto.Bool(true)}, nil
}

// renameCheck holds what both rename flavours need to know.
type renameCheck struct {
	src, dstParent *inode
	dstName        string
	dst            *inode // existing destination, if any
}

func (nn *nameNode) resolveRename(srcPath, dstPath string) (*renameCheck, error) {
	src, err := nn.lookup(srcPath)
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, remote(ExcFileNotFound, "rename source %s is not found.", srcPath)
	}
	if src == nn.root {
		return nil, remote(ExcIO, "rename source cannot be the root")
	}
	parts, err := splitPath(dstPath)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, remote(ExcIO, "rename destination cannot be the root")
	}
	s, d := cleanPath(srcPath), cleanPath(dstPath)
	if strings.HasPrefix(d, s+"/") {
		return nil, remote(ExcIO, "Rename destination %s is a directory or file under source %s", dstPath, srcPath)
	}
	parent, err := nn.lookup(parentDir(d))
	if err != nil {
		return nil, err
	}
	if parent == nil {
		return nil, remote(ExcFileNotFound, "rename destination parent %s not found.", parentDir(d))
	}
	if !parent.Dir {
		return nil, remote(ExcParentNotDirectory, "rename destination parent %s is a file.", parentDir(d))
	}
	name := parts[len(parts)-1]
	return &renameCheck{src: src, dstParent: parent, dstName: name, dst: parent.Children[name]}, nil
}

func parentDir(p string) string {
	i := strings.LastIndex(p, "/")
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func (nn *nameNode) move(n, parent *inode, name string) {
	delete(n.parent.Children, n.name)
	now := nowMillis()
	n.parent.MTime = now
	n.parent, n.name = parent, name
	parent.Children[name] = n
	parent.MTime = now
}

// rename is the old ClientProtocol.rename: it moves into an existing
// directory and answers false, not an exception, for most failures.
func (nn *nameNode) rename(_ *call, req *pb.RenameRequestProto) (proto.Message, error) {
	no := &pb.RenameResponseProto{Result: proto.Bool(false)}
	rc, err := nn.resolveRename(req.GetSrc(), req.GetDst())
	if err != nil {
		if _, ok := err.(*remoteError); ok {
			return no, nil
		}
		return nil, err
	}
	parent, name := rc.dstParent, rc.dstName
	if rc.dst != nil {
		if !rc.dst.Dir || rc.dst == rc.src {
			return no, nil
		}
		// Old rename moves src into an existing destination directory.
		if rc.dst == rc.src.parent || isAncestor(rc.src, rc.dst) {
			return no, nil
		}
		parent, name = rc.dst, rc.src.name
		if parent.Children[name] != nil {
			return no, nil
		}
	}
	nn.move(rc.src, parent, name)
	return &pb.RenameResponseProto{Result: proto.Bool(true)}, nil
}

func isAncestor(a, b *inode) bool {
	for x := b; x != nil; x = x.parent {
		if x == a {
			return true
		}
	}
	return false
}

// rename2 is ClientProtocol.rename with Options.Rename: it never moves into
// a directory, and without OVERWRITE an existing destination is an error.
func (nn *nameNode) rename2(_ *call, req *pb.Rename2RequestProto) (proto.Message, error) {
	rc, err := nn.resolveRename(req.GetSrc(), req.GetDst())
	if err != nil {
		return nil, err
	}
	if d := rc.dst; d != nil {
		switch {
		case d == rc.src:
			return nil, remote(ExcFileAlreadyExists, "The source %s and destination %s are the same", req.GetSrc(), req.GetDst())
		case !req.GetOverwriteDest():
			return nil, remote(ExcFileAlreadyExists, "rename destination %s already exists", req.GetDst())
		case d.Dir && !rc.src.Dir:
			return nil, remote(ExcIO, "Source %s is not a directory but destination %s is", req.GetSrc(), req.GetDst())
		case !d.Dir && rc.src.Dir:
			return nil, remote(ExcIO, "Source %s is a directory but destination %s is not", req.GetSrc(), req.GetDst())
		case d.Dir && len(d.Children) > 0:
			return nil, remote(ExcIO, "rename destination directory is not empty: %s", req.GetDst())
		}
		nn.remove(d)
	}
	nn.move(rc.src, rc.dstParent, rc.dstName)
	return &pb.Rename2ResponseProto{}, nil
}

func (nn *nameNode) delete(_ *call, req *pb.DeleteRequestProto) (proto.Message, error) {
	n, err := nn.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if n == nil || n == nn.root {
		return &pb.DeleteResponseProto{Result: proto.Bool(false)}, nil
	}
	if n.Dir && len(n.Children) > 0 && !req.GetRecursive() {
		return nil, remote(ExcPathIsNotEmptyDir, "`%s is non empty': Directory is not empty", req.GetSrc())
	}
	nn.remove(n)
	return &pb.DeleteResponseProto{Result: proto.Bool(true)}, nil
}

func (nn *nameNode) getBlockLocations(_ *call, req *pb.GetBlockLocationsRequestProto) (proto.Message, error) {
	n, err := nn.lookup(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errNotFound(req.GetSrc())
	}
	if n.Dir {
		return nil, remote(ExcFileNotFound, "Path is not a file: %s", req.GetSrc())
	}
	n.ATime = nowMillis()
	return &pb.GetBlockLocationsResponseProto{Locations: nn.locatedBlocks(n, req.GetOffset(), req.GetLength())}, nil
}

// locatedBlocks lists the visible blocks of n overlapping [start,
// start+length), with the one DataNode as their location.
func (nn *nameNode) locatedBlocks(n *inode, start, length uint64) *pb.LocatedBlocksProto {
	end := start + length
	locs := &pb.LocatedBlocksProto{
		FileLength:        proto.Uint64(n.visibleLength()),
		UnderConstruction: proto.Bool(n.underConstruction()),
		// Readers never get the block being written, so the last block
		// they see is always complete.
		IsLastBlockComplete: proto.Bool(true),
	}
	var off uint64
	for _, b := range n.visibleBlocks() {
		if off+b.NumBytes > start && (off < end || (length == 0 && off == start)) {
			locs.Blocks = append(locs.Blocks, nn.located(b, off))
		}
		locs.LastBlock = nn.located(b, off)
		off += b.NumBytes
	}
	return locs
}

func (nn *nameNode) getServerDefaults(_ *call, _ *pb.GetServerDefaultsRequestProto) (proto.Message, error) {
	return &pb.GetServerDefaultsResponseProto{ServerDefaults: &pb.FsServerDefaultsProto{
		BlockSize:           proto.Uint64(uint64(nn.opts.blockSize)),
		BytesPerChecksum:    proto.Uint32(bytesPerChecksum),
		WritePacketSize:     proto.Uint32(writePacketSize),
		Replication:         proto.Uint32(uint32(nn.opts.replication)),
		FileBufferSize:      proto.Uint32(4096),
		EncryptDataTransfer: proto.Bool(false),
		TrashInterval:       proto.Uint64(0),
		ChecksumType:        pb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(),
	}}, nil
}

func (nn *nameNode) renewLease(_ *call, req *pb.RenewLeaseRequestProto) (proto.Message, error) {
	nn.leases[req.GetClientName()] = time.Now()
	return &pb.RenewLeaseResponseProto{}, nil
}

func (nn *nameNode) getFsStats(_ *call, _ *pb.GetFsStatusRequestProto) (proto.Message, error) {
	used := nn.usedBytes()
	return &pb.GetFsStatsResponseProto{
		Capacity: proto.Uint64(fsCapacity), Used: proto.Uint64(used), Remaining: proto.Uint64(fsCapacity - used),
		UnderReplicated: proto.Uint64(0), CorruptBlocks: proto.Uint64(0), MissingBlocks: proto.Uint64(0),
	}, nil
}

func (nn *nameNode) getContentSummary(_ *call, req *pb.GetContentSummaryRequestProto) (proto.Message, error) {
	n, err := nn.lookup(req.GetPath())
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errNotFound(req.GetPath())
	}
	var length, files, dirs, space uint64
	var walk func(x *inode)
	walk = func(x *inode) {
		if x.Dir {
			dirs++
			for _, c := range x.Children {
				walk(c)
			}
			return
		}
		files++
		l := x.visibleLength()
		length += l
		space += l * uint64(max(x.Replication, 1))
	}
	walk(n)
	noQuota := ^uint64(0) // Java's -1 as an unsigned varint
	return &pb.GetContentSummaryResponseProto{Summary: &pb.ContentSummaryProto{
		Length: proto.Uint64(length), FileCount: proto.Uint64(files), DirectoryCount: proto.Uint64(dirs),
		Quota: proto.Uint64(noQuota), SpaceConsumed: proto.Uint64(space), SpaceQuota: proto.Uint64(noQuota),
	}}, nil
}

func (nn *nameNode) existing(p string) (*inode, error) {
	n, err := nn.lookup(p)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, errNotFound(p)
	}
	return n, nil
}

func (nn *nameNode) setPermission(_ *call, req *pb.SetPermissionRequestProto) (proto.Message, error) {
	n, err := nn.existing(req.GetSrc())
	if err != nil {
		return nil, err
	}
	n.Perm = req.GetPermission().GetPerm() & 0o7777
	return &pb.SetPermissionResponseProto{}, nil
}

func (nn *nameNode) setOwner(_ *call, req *pb.SetOwnerRequestProto) (proto.Message, error) {
	n, err := nn.existing(req.GetSrc())
	if err != nil {
		return nil, err
	}
	if u := req.GetUsername(); u != "" {
		n.Owner = u
	}
	if g := req.GetGroupname(); g != "" {
		n.Group = g
	}
	return &pb.SetOwnerResponseProto{}, nil
}

func (nn *nameNode) setTimes(_ *call, req *pb.SetTimesRequestProto) (proto.Message, error) {
	n, err := nn.existing(req.GetSrc())
	if err != nil {
		return nil, err
	}
	// -1 (all bits set) means "leave unchanged", as in HDFS.
	if req.GetMtime() != ^uint64(0) {
		n.MTime = req.GetMtime()
	}
	if req.GetAtime() != ^uint64(0) {
		n.ATime = req.GetAtime()
	}
	return &pb.SetTimesResponseProto{}, nil
}

// truncate shortens a complete file. The replica of a block cut in the
// middle is truncated on the spot, so the file is usable at once and the
// answer is always true (HDFS answers false and recovers in the background).
func (nn *nameNode) truncate(_ *call, req *pb.TruncateRequestProto) (proto.Message, error) {
	src, newLen := req.GetSrc(), req.GetNewLength()
	n, err := nn.existing(src)
	if err != nil {
		return nil, err
	}
	if n.Dir {
		return nil, remote(ExcFileNotFound, "Path is not a file: %s", src)
	}
	if n.underConstruction() {
		return nil, remote(ExcAlreadyBeingCreated, "Failed to TRUNCATE_FILE %s for %s because this file lease is currently owned by %s", src, req.GetClientName(), n.Holder)
	}
	if newLen > n.visibleLength() {
		return nil, remote(ExcIllegalArgument, "Cannot truncate to a larger file size. Current size: %d, truncate size: %d.", n.visibleLength(), newLen)
	}
	var off uint64
	keep := 0
	for _, b := range n.Blocks {
		if off >= newLen {
			break
		}
		keep++
		if off+b.NumBytes > newLen {
			cut := newLen - off
			if err := nn.dn.truncateReplica(b.ID, cut); err != nil {
				return nil, remote(ExcIO, "truncate %s: %v", src, err)
			}
			b.NumBytes, b.replicaLen = cut, cut
		}
		off += b.NumBytes
	}
	for _, b := range n.Blocks[keep:] {
		delete(nn.blockFile, b.ID)
		nn.dn.deleteReplica(b.ID)
	}
	n.Blocks = n.Blocks[:keep]
	n.MTime = nowMillis()
	return &pb.TruncateResponseProto{Result: proto.Bool(true)}, nil
}
