package hdfstest

import "fmt"

// Java exception class names the NameNode answers with. Clients map some of
// them to Go errors: colinmarc/hdfs turns FileNotFoundException into
// os.ErrNotExist, FileAlreadyExistsException (and AlreadyBeingCreatedException
// on create) into os.ErrExist, PathIsNotEmptyDirectoryException into
// syscall.ENOTEMPTY and AccessControlException into os.ErrPermission.
const (
	ExcFileNotFound        = "java.io.FileNotFoundException"
	ExcFileAlreadyExists   = "org.apache.hadoop.fs.FileAlreadyExistsException"
	ExcAlreadyBeingCreated = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException"
	ExcParentNotDirectory  = "org.apache.hadoop.fs.ParentNotDirectoryException"
	ExcPathIsNotEmptyDir   = "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"
	ExcLeaseExpired        = "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException"
	ExcAccessControl       = "org.apache.hadoop.security.AccessControlException"
	ExcIllegalArgument     = "org.apache.hadoop.HadoopIllegalArgumentException"
	ExcRetriable           = "org.apache.hadoop.ipc.RetriableException"
	ExcIO                  = "java.io.IOException"
	excNoSuchMethod        = "org.apache.hadoop.ipc.RpcNoSuchMethodException"
	excNoSuchProtocol      = "org.apache.hadoop.ipc.RpcNoSuchProtocolException"
	excServer              = "org.apache.hadoop.ipc.RpcServerException"
)

// remoteError is an exception the NameNode sends back to the client in the
// RpcResponseHeaderProto instead of a response message.
type remoteError struct {
	class string
	msg   string
}

func (e *remoteError) Error() string { return e.class + ": " + e.msg }

func remote(class, format string, args ...any) *remoteError {
	return &remoteError{class: class, msg: fmt.Sprintf(format, args...)}
}

func errNotFound(p string) error { return remote(ExcFileNotFound, "File does not exist: %s", p) }
