package hdfstest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

const (
	dataTransferVersion = 28
	opWriteBlock        = 0x50
	opReadBlock         = 0x51
	opBlockChecksum     = 0x55
	maxPacketLen        = 16 << 20
	heartbeatSeqno      = -1
	readPacketData      = 64 * 1024 // data bytes per read packet, 128 chunks
)

// castagnoli is read-only after package initialisation.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// replica is the DataNode's copy of one block. Finalized replicas live in
// DIR/finalized/blk_ID, replicas being written in DIR/rbw/blk_ID (the
// names HDFS uses).
type replica struct {
	length  uint64
	final   bool
	writing bool
}

// dataNode stores block replicas and serves the data-transfer protocol.
type dataNode struct {
	log       *slog.Logger
	dir       string
	uuid      string
	storageID string
	xferPort  int
	nn        *nameNode
	faults    *Faults

	mu       sync.Mutex
	replicas map[uint64]*replica
}

func newDataNode(log *slog.Logger, dir string, faults *Faults) (*dataNode, error) {
	dn := &dataNode{log: log, dir: dir, faults: faults, replicas: map[uint64]*replica{}}
	for _, sub := range []string{"finalized", "rbw"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("hdfstest: datanode dir: %w", err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("hdfstest: scan %s: %w", sub, err)
		}
		for _, e := range entries {
			id, err := strconv.ParseUint(strings.TrimPrefix(e.Name(), "blk_"), 10, 64)
			if err != nil || !strings.HasPrefix(e.Name(), "blk_") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("hdfstest: stat replica %s: %w", e.Name(), err)
			}
			dn.replicas[id] = &replica{length: uint64(info.Size()), final: sub == "finalized"}
		}
	}
	idFile := filepath.Join(dir, "datanode-uuid")
	if b, err := os.ReadFile(idFile); err == nil {
		dn.uuid = strings.TrimSpace(string(b))
	} else {
		dn.uuid = fmt.Sprintf("hdfstest-dn-%d", time.Now().UnixNano())
		if err := os.WriteFile(idFile, []byte(dn.uuid+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("hdfstest: write %s: %w", idFile, err)
		}
	}
	dn.storageID = "DS-" + dn.uuid
	return dn, nil
}

func (dn *dataNode) path(id uint64, final bool) string {
	sub := "rbw"
	if final {
		sub = "finalized"
	}
	return filepath.Join(dn.dir, sub, "blk_"+strconv.FormatUint(id, 10))
}

func (dn *dataNode) info() *pb.DatanodeInfoProto {
	return &pb.DatanodeInfoProto{
		Id: &pb.DatanodeIDProto{
			IpAddr: proto.String("127.0.0.1"), HostName: proto.String("localhost"),
			DatanodeUuid: proto.String(dn.uuid), XferPort: proto.Uint32(uint32(dn.xferPort)),
			InfoPort: proto.Uint32(0), IpcPort: proto.Uint32(0),
		},
		Capacity: proto.Uint64(fsCapacity),
	}
}

// finalizedReplicas is the DataNode's block report: finalized replica
// lengths by block ID.
func (dn *dataNode) finalizedReplicas() map[uint64]uint64 {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	out := map[uint64]uint64{}
	for id, r := range dn.replicas {
		if r.final {
			out[id] = r.length
		}
	}
	return out
}

func (dn *dataNode) deleteReplica(id uint64) {
	dn.mu.Lock()
	delete(dn.replicas, id)
	dn.mu.Unlock()
	for _, final := range []bool{true, false} {
		if err := os.Remove(dn.path(id, final)); err != nil && !errors.Is(err, os.ErrNotExist) {
			dn.log.Warn("hdfstest: delete replica", "block", id, "err", err)
		}
	}
}

// recoverReplica finalizes whatever a dead writer left of block id and
// returns its length.
func (dn *dataNode) recoverReplica(id uint64) (uint64, bool) {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	r := dn.replicas[id]
	if r == nil {
		return 0, false
	}
	if !r.final {
		info, err := os.Stat(dn.path(id, false))
		if err != nil {
			return 0, false
		}
		if err := os.Rename(dn.path(id, false), dn.path(id, true)); err != nil {
			dn.log.Warn("hdfstest: recover replica", "block", id, "err", err)
			return 0, false
		}
		r.length, r.final = uint64(info.Size()), true
	}
	return r.length, true
}

func (dn *dataNode) truncateReplica(id, length uint64) error {
	dn.mu.Lock()
	defer dn.mu.Unlock()
	r := dn.replicas[id]
	if r == nil || !r.final {
		return fmt.Errorf("no finalized replica of block %d", id)
	}
	if err := os.Truncate(dn.path(id, true), int64(length)); err != nil {
		return err
	}
	r.length = length
	return nil
}

// serve handles one data-transfer connection: a version, an op code and a
// varint-delimited op message, then the op's own exchange.
func (dn *dataNode) serve(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 256<<10)
	var hdr [3]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return
	}
	if v := binary.BigEndian.Uint16(hdr[:2]); v != dataTransferVersion {
		dn.log.Warn("hdfstest: unsupported data transfer version", "version", v)
		_ = sendOpResponse(conn, pb.Status_ERROR, fmt.Sprintf("data transfer version %d is not %d", v, dataTransferVersion))
		return
	}
	var err error
	switch hdr[2] {
	case opWriteBlock:
		op := &pb.OpWriteBlockProto{}
		if err = readDelimited(br, op); err == nil {
			err = dn.writeBlock(ctx, conn, br, op)
		}
	case opReadBlock:
		op := &pb.OpReadBlockProto{}
		if err = readDelimited(br, op); err == nil {
			err = dn.readBlock(ctx, conn, br, op)
		}
	case opBlockChecksum:
		op := &pb.OpBlockChecksumProto{}
		if err = readDelimited(br, op); err == nil {
			err = dn.blockChecksum(conn, op)
		}
	default:
		dn.log.Warn("hdfstest: unsupported data transfer op", "op", hdr[2])
		err = sendOpResponse(conn, pb.Status_ERROR_UNSUPPORTED, fmt.Sprintf("op 0x%x is not supported by hdfstest", hdr[2]))
	}
	if err != nil && ctx.Err() == nil {
		dn.log.Debug("hdfstest: data transfer", "op", hdr[2], "err", err)
	}
}

func readDelimited(r *bufio.Reader, m proto.Message) error {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return err
	}
	if n > maxPacketLen {
		return fmt.Errorf("message of %d bytes is too long", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return proto.Unmarshal(b, m)
}

func writeDelimited(w io.Writer, m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	out := binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen32), uint64(len(b)))
	_, err = w.Write(append(out, b...))
	return err
}

// sendOpResponse answers an op. firstBadLink is always set (empty), as the
// Java DataNode does; the colinmarc client reads at least 5 bytes for this
// message and would stall on a shorter one.
func sendOpResponse(w io.Writer, st pb.Status, msg string) error {
	resp := &pb.BlockOpResponseProto{Status: st.Enum(), FirstBadLink: proto.String("")}
	if msg != "" {
		resp.Message = proto.String(msg)
	}
	return writeDelimited(w, resp)
}

func checksumTable(t pb.ChecksumTypeProto) (*crc32.Table, error) {
	switch t {
	case pb.ChecksumTypeProto_CHECKSUM_CRC32C:
		return castagnoli, nil
	case pb.ChecksumTypeProto_CHECKSUM_CRC32:
		return crc32.IEEETable, nil
	default:
		return nil, fmt.Errorf("checksum type %v is not supported", t)
	}
}

// openForWrite prepares the replica a write op names.
func (dn *dataNode) openForWrite(op *pb.OpWriteBlockProto) (*os.File, uint64, error) {
	id := op.GetHeader().GetBaseHeader().GetBlock().GetBlockId()
	dn.mu.Lock()
	defer dn.mu.Unlock()
	r := dn.replicas[id]
	switch op.GetStage() {
	case pb.OpWriteBlockProto_PIPELINE_SETUP_CREATE:
		if r != nil {
			return nil, 0, fmt.Errorf("replica of block %d already exists", id)
		}
		f, err := os.OpenFile(dn.path(id, false), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, 0, err
		}
		dn.replicas[id] = &replica{writing: true}
		return f, 0, nil
	case pb.OpWriteBlockProto_PIPELINE_SETUP_APPEND:
		if r == nil || !r.final || r.writing {
			return nil, 0, fmt.Errorf("no finalized replica of block %d to append to", id)
		}
		if r.length != op.GetMinBytesRcvd() {
			return nil, 0, fmt.Errorf("block %d has %d bytes, the client expects %d", id, r.length, op.GetMinBytesRcvd())
		}
		if err := os.Rename(dn.path(id, true), dn.path(id, false)); err != nil {
			return nil, 0, err
		}
		f, err := os.OpenFile(dn.path(id, false), os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, 0, err
		}
		r.final, r.writing = false, true
		return f, r.length, nil
	default:
		return nil, 0, fmt.Errorf("block construction stage %v is not supported (single-DataNode pipeline, no recovery)", op.GetStage())
	}
}

// writeBlock receives one block: packets of CRC-checked chunks, each
// acknowledged, ending with an empty last packet that finalizes the replica.
func (dn *dataNode) writeBlock(ctx context.Context, conn net.Conn, br *bufio.Reader, op *pb.OpWriteBlockProto) error {
	eff, err := dn.faults.before(ctx, OpWriteBlock)
	if err != nil {
		return sendOpResponse(conn, pb.Status_ERROR, err.Error())
	}
	id := op.GetHeader().GetBaseHeader().GetBlock().GetBlockId()
	if len(op.GetTargets()) > 0 {
		return sendOpResponse(conn, pb.Status_ERROR, "hdfstest has one DataNode: pipelines with downstream targets are not supported")
	}
	tab, err := checksumTable(op.GetRequestedChecksum().GetType())
	bpc := int(op.GetRequestedChecksum().GetBytesPerChecksum())
	if err == nil && (bpc <= 0 || bpc > 1<<20) {
		err = fmt.Errorf("bytesPerChecksum %d out of range", bpc)
	}
	if err != nil {
		return sendOpResponse(conn, pb.Status_ERROR, err.Error())
	}
	f, length, err := dn.openForWrite(op)
	if err != nil {
		return sendOpResponse(conn, pb.Status_ERROR, err.Error())
	}
	if op.GetStage() == pb.OpWriteBlockProto_PIPELINE_SETUP_APPEND {
		dn.nn.replicaReopened(id)
	}
	finished := false
	defer func() {
		if !finished {
			f.Close()
			dn.mu.Lock()
			if r := dn.replicas[id]; r != nil {
				r.writing = false
				if info, err := os.Stat(dn.path(id, false)); err == nil {
					r.length = uint64(info.Size())
				}
			}
			dn.mu.Unlock()
		}
	}()
	if err := sendOpResponse(conn, pb.Status_SUCCESS, ""); err != nil {
		return err
	}

	// Data goes straight to the file, packet by packet: an ack promises the
	// bytes are on the DataNode (hflush), and lease recovery after a dead
	// writer keeps exactly what was acknowledged.
	var pre [6]byte
	var body []byte
	var received int64
	ack := func(seqno int64, st pb.Status) error {
		return writeDelimited(conn, &pb.PipelineAckProto{Seqno: proto.Int64(seqno), Reply: []pb.Status{st}})
	}
	for {
		if _, err := io.ReadFull(br, pre[:]); err != nil {
			return fmt.Errorf("block %d: read packet: %w", id, err)
		}
		plen := binary.BigEndian.Uint32(pre[:4])
		hlen := binary.BigEndian.Uint16(pre[4:])
		if plen < 4 || plen > maxPacketLen {
			return fmt.Errorf("block %d: packet length %d out of range", id, plen)
		}
		hb := make([]byte, hlen)
		if _, err := io.ReadFull(br, hb); err != nil {
			return fmt.Errorf("block %d: read packet header: %w", id, err)
		}
		ph := &pb.PacketHeaderProto{}
		if err := proto.Unmarshal(hb, ph); err != nil {
			return fmt.Errorf("block %d: decode packet header: %w", id, err)
		}
		n := int(plen - 4)
		if cap(body) < n {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(br, body); err != nil {
			return fmt.Errorf("block %d: read packet body: %w", id, err)
		}
		dataLen := int(ph.GetDataLen())
		chunks := (dataLen + bpc - 1) / bpc
		if dataLen < 0 || dataLen+chunks*4 != n {
			_ = ack(ph.GetSeqno(), pb.Status_ERROR)
			return fmt.Errorf("block %d: packet of %d bytes does not hold %d data bytes with checksums", id, n, dataLen)
		}
		if ph.GetSeqno() == heartbeatSeqno && dataLen == 0 {
			if err := ack(heartbeatSeqno, pb.Status_SUCCESS); err != nil {
				return err
			}
			continue
		}
		sums, data := body[:chunks*4], body[chunks*4:]
		if uint64(ph.GetOffsetInBlock()) != length {
			_ = ack(ph.GetSeqno(), pb.Status_ERROR)
			return fmt.Errorf("block %d: packet at offset %d, replica has %d bytes", id, ph.GetOffsetInBlock(), length)
		}
		for i := 0; i < chunks; i++ {
			chunk := data[i*bpc : min((i+1)*bpc, dataLen)]
			if crc32.Checksum(chunk, tab) != binary.BigEndian.Uint32(sums[i*4:]) {
				_ = ack(ph.GetSeqno(), pb.Status_ERROR_CHECKSUM)
				return fmt.Errorf("block %d: checksum error in chunk at offset %d", id, length+uint64(i*bpc))
			}
		}
		if eff.dropAfter >= 0 && received+int64(dataLen) > eff.dropAfter {
			dn.log.Info("hdfstest: fault: dropping block write", "block", id, "after_bytes", received)
			return conn.Close()
		}
		if _, err := f.Write(data); err != nil {
			_ = ack(ph.GetSeqno(), pb.Status_ERROR)
			return fmt.Errorf("block %d: write replica: %w", id, err)
		}
		received += int64(dataLen)
		length += uint64(dataLen)
		if ph.GetLastPacketInBlock() {
			if err := dn.finalize(id, f, length); err != nil {
				_ = ack(ph.GetSeqno(), pb.Status_ERROR)
				return err
			}
			finished = true
			return ack(ph.GetSeqno(), pb.Status_SUCCESS)
		}
		if err := ack(ph.GetSeqno(), pb.Status_SUCCESS); err != nil {
			return err
		}
	}
}

// finalize closes the replica file, moves it to finalized/ and reports it to
// the NameNode before the last ack, so complete never races the report.
func (dn *dataNode) finalize(id uint64, f *os.File, length uint64) error {
	if err := f.Close(); err != nil {
		return fmt.Errorf("block %d: close replica: %w", id, err)
	}
	dn.mu.Lock()
	r := dn.replicas[id]
	if r == nil {
		dn.mu.Unlock()
		return fmt.Errorf("block %d was deleted while being written", id)
	}
	if err := os.Rename(dn.path(id, false), dn.path(id, true)); err != nil {
		dn.mu.Unlock()
		return fmt.Errorf("block %d: finalize replica: %w", id, err)
	}
	r.length, r.final, r.writing = length, true, false
	dn.mu.Unlock()
	if !dn.nn.blockReceived(id, length) {
		dn.deleteReplica(id)
		return fmt.Errorf("block %d no longer belongs to any file", id)
	}
	return nil
}

// openFinalized returns the finalized replica of id for reading.
func (dn *dataNode) openFinalized(id uint64) (*os.File, uint64, error) {
	dn.mu.Lock()
	r := dn.replicas[id]
	dn.mu.Unlock()
	if r == nil || !r.final {
		return nil, 0, fmt.Errorf("replica not found for block %d", id)
	}
	f, err := os.Open(dn.path(id, true))
	if err != nil {
		return nil, 0, err
	}
	return f, r.length, nil
}

// readBlock streams [offset, offset+len) of a finalized replica, starting at
// the enclosing chunk boundary, in packets with checksums, then an empty
// last packet.
func (dn *dataNode) readBlock(ctx context.Context, conn net.Conn, br *bufio.Reader, op *pb.OpReadBlockProto) error {
	eff, err := dn.faults.before(ctx, OpReadBlock)
	if err != nil {
		return sendOpResponse(conn, pb.Status_ERROR, err.Error())
	}
	id := op.GetHeader().GetBaseHeader().GetBlock().GetBlockId()
	f, rlen, err := dn.openFinalized(id)
	if err != nil {
		return sendOpResponse(conn, pb.Status_ERROR, err.Error())
	}
	defer f.Close()
	off, n := op.GetOffset(), op.GetLen()
	if off > rlen || n > rlen-off {
		return sendOpResponse(conn, pb.Status_ERROR, fmt.Sprintf("Offset %d and length %d don't match block %d ( blockLen %d )", off, n, id, rlen))
	}
	sendSums := op.GetSendChecksums()
	ctype := pb.ChecksumTypeProto_CHECKSUM_CRC32C
	if !sendSums {
		ctype = pb.ChecksumTypeProto_CHECKSUM_NULL
	}
	pos := off - off%bytesPerChecksum
	end := min((off+n+bytesPerChecksum-1)/bytesPerChecksum*bytesPerChecksum, rlen)
	resp := &pb.BlockOpResponseProto{
		Status:       pb.Status_SUCCESS.Enum(),
		FirstBadLink: proto.String(""),
		ReadOpChecksumInfo: &pb.ReadOpChecksumInfoProto{
			Checksum:    &pb.ChecksumProto{Type: ctype.Enum(), BytesPerChecksum: proto.Uint32(bytesPerChecksum)},
			ChunkOffset: proto.Uint64(pos),
		},
	}
	bw := bufio.NewWriterSize(conn, 256<<10)
	if err := writeDelimited(bw, resp); err != nil {
		return err
	}
	data := make([]byte, readPacketData)
	sums := make([]byte, readPacketData/bytesPerChecksum*4)
	var sent int64
	seqno := int64(0)
	for pos < end {
		k := int(min(uint64(readPacketData), end-pos))
		if _, err := f.ReadAt(data[:k], int64(pos)); err != nil {
			return fmt.Errorf("block %d: read replica: %w", id, err)
		}
		var s []byte
		if sendSums {
			chunks := (k + bytesPerChecksum - 1) / bytesPerChecksum
			for i := 0; i < chunks; i++ {
				binary.BigEndian.PutUint32(sums[i*4:], crc32.Checksum(data[i*bytesPerChecksum:min((i+1)*bytesPerChecksum, k)], castagnoli))
			}
			s = sums[:chunks*4]
		}
		if eff.dropAfter >= 0 && sent+int64(k) > eff.dropAfter {
			// Cut inside a packet, so the client sees a truncated stream
			// rather than what looks like a clean end of block: the
			// AfterBytes data bytes, or half of the next packet's length
			// prefix when AfterBytes falls on a packet boundary.
			var pkt bytes.Buffer
			pw := bufio.NewWriter(&pkt)
			_ = writePacket(pw, pos, seqno, false, s, data[:k])
			_ = pw.Flush()
			cut := 3
			if part := int(eff.dropAfter - sent); part > 0 {
				cut = pkt.Len() - k + part
			}
			_, _ = bw.Write(pkt.Bytes()[:cut])
			_ = bw.Flush()
			dn.log.Info("hdfstest: fault: dropping block read", "block", id, "after_bytes", eff.dropAfter)
			return conn.Close()
		}
		if err := writePacket(bw, pos, seqno, false, s, data[:k]); err != nil {
			return err
		}
		pos += uint64(k)
		sent += int64(k)
		seqno++
	}
	if err := writePacket(bw, pos, seqno, true, nil, nil); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// Java clients send a ClientReadStatusProto after a full read; the
	// colinmarc client just hangs up. Either is fine.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_ = readDelimited(br, &pb.ClientReadStatusProto{})
	return nil
}

func writePacket(w *bufio.Writer, offset uint64, seqno int64, last bool, sums, data []byte) error {
	hb, err := proto.Marshal(&pb.PacketHeaderProto{
		OffsetInBlock:     proto.Int64(int64(offset)),
		Seqno:             proto.Int64(seqno),
		LastPacketInBlock: proto.Bool(last),
		DataLen:           proto.Int32(int32(len(data))),
	})
	if err != nil {
		return err
	}
	var pre [6]byte
	// The length counts itself (4 bytes), checksums and data, not the header.
	binary.BigEndian.PutUint32(pre[:4], uint32(4+len(sums)+len(data)))
	binary.BigEndian.PutUint16(pre[4:], uint16(len(hb)))
	w.Write(pre[:])
	w.Write(hb)
	w.Write(sums)
	_, err = w.Write(data)
	return err
}

// blockChecksum answers OP_BLOCK_CHECKSUM with HDFS's MD5 of the chunk
// CRC32Cs of the replica.
func (dn *dataNode) blockChecksum(conn net.Conn, op *pb.OpBlockChecksumProto) error {
	id := op.GetHeader().GetBlock().GetBlockId()
	f, _, err := dn.openFinalized(id)
	if err != nil {
		return sendOpResponse(conn, pb.Status_ERROR, err.Error())
	}
	defer f.Close()
	h := md5.New()
	buf := make([]byte, bytesPerChecksum)
	var chunks uint64
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			var c [4]byte
			binary.BigEndian.PutUint32(c[:], crc32.Checksum(buf[:k], castagnoli))
			h.Write(c[:])
			chunks++
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return sendOpResponse(conn, pb.Status_ERROR, err.Error())
		}
	}
	return writeDelimited(conn, &pb.BlockOpResponseProto{
		Status:       pb.Status_SUCCESS.Enum(),
		FirstBadLink: proto.String(""),
		ChecksumResponse: &pb.OpBlockChecksumResponseProto{
			BytesPerCrc: proto.Uint32(bytesPerChecksum), CrcPerBlock: proto.Uint64(chunks),
			BlockChecksum: h.Sum(nil), CrcType: pb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(),
		},
	})
}
