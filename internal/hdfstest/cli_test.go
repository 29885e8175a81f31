package hdfstest

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hdfsCLI is Debian's hdfs-cli package: the colinmarc gohdfs command line,
// a second client built independently of this module (v2.3.0).
const hdfsCLI = "/usr/bin/hdfs"

func TestGoHDFSCommandLine(t *testing.T) {
	if _, err := os.Stat(hdfsCLI); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (install the hdfs-cli package): %v", hdfsCLI, err)
		}
		t.Skipf("%s is missing (apt-get install hdfs-cli)", hdfsCLI)
	}
	const bs = 1 << 20
	s := Start(t, WithBlockSize(bs))
	tmp := t.TempDir()
	run := func(wantOK bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(hdfsCLI, args...)
		cmd.Env = []string{"HADOOP_NAMENODE=" + s.NameNodeAddr(), "HADOOP_USER_NAME=cli", "HOME=" + tmp, "PATH=/usr/bin:/bin"}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatalf("hdfs %v: %v", args, err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if (err == nil) != wantOK {
				t.Fatalf("hdfs %s: err %v (want success %v)\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, wantOK, out.String(), errb.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("hdfs %v: timed out", args)
		}
		return out.String()
	}

	data := randomBytes(6, 2*bs+12345)
	local := filepath.Join(tmp, "auth.log")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(true, "mkdir", "-p", "/cli/in")
	run(true, "put", local, "/cli/in/auth.log")
	if out := run(true, "ls", "/cli/in"); strings.TrimSpace(out) != "auth.log" {
		t.Fatalf("ls /cli/in = %q, want auth.log", out)
	}
	if out := run(true, "ls", "-l", "/cli/in/auth.log"); !strings.Contains(out, "cli") || !strings.Contains(out, "2109497") {
		t.Fatalf("ls -l = %q; want owner cli and size 2109497", out)
	}
	if out := run(true, "cat", "/cli/in/auth.log"); out != string(data) {
		t.Fatalf("cat returned %d bytes, want %d identical", len(out), len(data))
	}
	run(true, "mv", "/cli/in/auth.log", "/cli/auth-2024.log")
	run(false, "cat", "/cli/in/auth.log")
	// mv -n (no clobber) onto an existing file is refused.
	run(true, "touch", "/cli/other")
	run(false, "mv", "-n", "/cli/other", "/cli/auth-2024.log")
	got := filepath.Join(tmp, "got.log")
	run(true, "get", "/cli/auth-2024.log", got)
	back, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	mustEqualBytes(t, "hdfs get", back, data)

	// checksum: HDFS's MD5-of-MD5-of-CRC32C, computed here independently.
	want := fileChecksum(data, bs)
	if out := run(true, "checksum", "/cli/auth-2024.log"); !strings.HasPrefix(out, want) {
		t.Fatalf("checksum = %q, want %s", out, want)
	}
	if out := run(true, "du", "-s", "/cli"); !strings.HasPrefix(strings.TrimSpace(out), "2109497") {
		t.Fatalf("du -s /cli = %q, want 2109497 bytes", out)
	}
	run(true, "rm", "-r", "/cli")
	run(false, "ls", "/cli")
}

// fileChecksum is HDFS's MD5MD5CRC32C file checksum as hadoop fs -checksum
// (and gohdfs) compute it: per block the MD5 of the big-endian CRC32C of
// every 512-byte chunk, then the MD5 of those, zero-padded to a power of 2
// (at least 32 bytes).
func fileChecksum(data []byte, blockSize int) string {
	var blockSums []byte
	for off := 0; off < len(data); off += blockSize {
		blk := data[off:min(off+blockSize, len(data))]
		h := md5.New()
		for c := 0; c < len(blk); c += 512 {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], crc32.Checksum(blk[c:min(c+512, len(blk))], crc32.MakeTable(crc32.Castagnoli)))
			h.Write(b[:])
		}
		blockSums = h.Sum(blockSums)
	}
	padded := 32
	for padded < len(blockSums) {
		padded *= 2
	}
	sum := md5.Sum(append(blockSums, make([]byte, padded-len(blockSums))...))
	return hex.EncodeToString(sum[:])
}
