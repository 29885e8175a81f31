package hdfstest

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"net"
	"testing"
	"time"

	pb "github.com/lambdalog/lambdalog/internal/hdfstest/internal/hadooppb"
	"google.golang.org/protobuf/proto"
)

// TestDataNodeRejectsBadChecksum writes a packet whose CRC does not match
// its data straight to the DataNode: the ack must say ERROR_CHECKSUM and
// the block must not become readable.
func TestDataNodeRejectsBadChecksum(t *testing.T) {
	s := Start(t)
	raw := dialRaw(t, s.NameNodeAddr())
	var created pb.CreateResponseProto
	if err := raw.call("create", &pb.CreateRequestProto{
		Src: proto.String("/corrupt"), Masked: &pb.FsPermissionProto{Perm: proto.Uint32(0o644)},
		ClientName: proto.String("raw-writer"), CreateFlag: proto.Uint32(flagCreate),
		CreateParent: proto.Bool(false), Replication: proto.Uint32(1), BlockSize: proto.Uint64(DefaultBlockSize),
	}, &created); err != nil {
		t.Fatal(err)
	}
	var added pb.AddBlockResponseProto
	if err := raw.call("addBlock", &pb.AddBlockRequestProto{Src: proto.String("/corrupt"), ClientName: proto.String("raw-writer")}, &added); err != nil {
		t.Fatal(err)
	}

	conn, err := net.DialTimeout("tcp", s.DataNodeAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	op := &pb.OpWriteBlockProto{
		Header: &pb.ClientOperationHeaderProto{
			BaseHeader: &pb.BaseHeaderProto{Block: added.GetBlock().GetB()},
			ClientName: proto.String("raw-writer"),
		},
		Stage: pb.OpWriteBlockProto_PIPELINE_SETUP_CREATE.Enum(), PipelineSize: proto.Uint32(1),
		MinBytesRcvd: proto.Uint64(0), MaxBytesRcvd: proto.Uint64(0), LatestGenerationStamp: proto.Uint64(0),
		RequestedChecksum: &pb.ChecksumProto{Type: pb.ChecksumTypeProto_CHECKSUM_CRC32C.Enum(), BytesPerChecksum: proto.Uint32(512)},
	}
	if _, err := conn.Write([]byte{0, dataTransferVersion, opWriteBlock}); err != nil {
		t.Fatal(err)
	}
	if err := writeDelimited(conn, op); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	var resp pb.BlockOpResponseProto
	if err := readDelimited(r, &resp); err != nil || resp.GetStatus() != pb.Status_SUCCESS {
		t.Fatalf("write op response = %v, %v", resp.GetStatus(), err)
	}
	data := []byte("700 bytes of log lines would go here; the checksum below is wrong")
	sum := make([]byte, 4)
	binary.BigEndian.PutUint32(sum, crc32.Checksum(data, castagnoli)^1)
	w := bufio.NewWriter(conn)
	if err := writePacket(w, 0, 1, false, sum, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var ack pb.PipelineAckProto
	if err := readDelimited(r, &ack); err != nil {
		t.Fatalf("read ack: %v", err)
	}
	if ack.GetSeqno() != 1 || len(ack.GetReply()) != 1 || ack.GetReply()[0] != pb.Status_ERROR_CHECKSUM {
		t.Fatalf("ack = seqno %d replies %v; want seqno 1 [ERROR_CHECKSUM]", ack.GetSeqno(), ack.GetReply())
	}
	if st, _ := s.File("/corrupt"); st.Length != 0 {
		t.Fatalf("corrupt data became visible: %+v", st)
	}
}
