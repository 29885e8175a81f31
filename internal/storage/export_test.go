package storage

import (
	"context"
	"os"
)

// OpenLocalWithHooks opens the local backend with its fsync and
// no-replace rename replaced, for tests.
// (nil keeps the real call).
func OpenLocalWithHooks(ctx context.Context, root string, sync func(*os.File) error, renameat2 func(oldpath, newpath string) error) (FS, error) {
	return openLocal(ctx, root, Options{}.withDefaults(), localHooks{sync: sync, renameat2: renameat2})
}

// SysRenameat2 is the real renameat2 with RENAME_NOREPLACE.
var SysRenameat2 = sysRenameat2

// Classify exposes the HDFS error classification.
func Classify(err error) (retryable, transport bool) {
	k := classify(err)
	return k.retryable, k.transport
}

// KerberosClient builds the gokrb5 client for k.
func KerberosClient(k KerberosOptions) (principal, realm string, hasKeytab bool, err error) {
	c, err := k.client()
	if err != nil {
		return "", "", false, err
	}
	return c.Credentials.UserName(), c.Credentials.Realm(), c.Credentials.HasKeytab(), nil
}
