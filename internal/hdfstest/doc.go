// Package hdfstest runs an in-process HDFS cluster of one NameNode and one
// DataNode that speaks the real Hadoop wire protocols over TCP on 127.0.0.1,
// the way Hadoop's MiniDFSCluster does for Java tests. It is test
// infrastructure for lambdalog's storage and consumer tests and for local
// demos (`lambdalog hdfs`), not a product: it keeps one replica, has no
// security (simple auth only, no SASL, no block tokens, no permission
// checks), and keeps the whole namespace in memory.
//
// # Protocols
//
// The NameNode speaks Hadoop IPC version 9: the "hrpc" connection preamble
// (version 9, service class, auth protocol 0 = simple), the
// IpcConnectionContextProto, then length-prefixed frames of varint-delimited
// RpcRequestHeaderProto + RequestHeaderProto + request, answered with
// RpcResponseHeaderProto + response, or with status ERROR and a Java
// exception class name (see the Exc* constants) that clients turn into
// os.ErrExist, os.ErrNotExist and friends. It implements the
// ClientNamenodeProtocol calls a client needs to read and write files (see
// nameNode.handlers); unknown methods are answered with
// ERROR_NO_SUCH_METHOD and logged at warn level, so missing ones are easy
// to spot and add.
//
// The DataNode speaks data-transfer protocol version 28: OP_WRITE_BLOCK with
// packets whose CRC32C (or CRC32) chunk checksums are verified and
// acknowledged with PipelineAckProto, OP_READ_BLOCK from any offset (packets
// start at the enclosing 512-byte chunk, as HDFS does) and OP_BLOCK_CHECKSUM.
//
// # Protobuf types
//
// The messages are generated from internal/hadooppb/hadoop.proto, a
// wire-compatible subset of Hadoop's .proto files under a different protobuf
// package name: the colinmarc client linked into the same test binary
// registers hadoop.hdfs.* names in the global registry, and registering them
// twice panics at init.
//
// # Semantics
//
// The HDFS behaviour that lambdalog's exactly-once commit relies on is
// reproduced: create without OVERWRITE fails with FileAlreadyExistsException
// when the file exists, and with AlreadyBeingCreatedException when another
// client holds its lease; rename2 without OVERWRITE fails with
// FileAlreadyExistsException, the old rename returns false; a file under
// construction shows only its complete blocks (length and readable data)
// until complete succeeds; leases are released by complete and expire after
// the hard limit (WithLeaseLimits); files span blocks of the requested block
// size.
//
// # Faults
//
// Server.Faults arms faults on NameNode calls and DataNode operations: fail
// the Nth call with a given exception (before or after running it), hang it,
// delay every call, cut a DataNode connection after N bytes of block data,
// refuse complete. See Fault.
//
// # Storage
//
// Block data always lives in files (a temporary directory removed by Close,
// or WithDir). With WithDir the namespace is also written to
// DIR/namenode/fsimage.json after every change, so a Server started again on
// the same directory sees the same files. The image is not fsynced: it
// survives Close and a crashed process, not a crashed machine.
package hdfstest
