package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"

	"github.com/lambdalog/lambdalog/internal/hdfstest"
	"github.com/lambdalog/lambdalog/internal/obs"
)

// defaultHDFSBlockSize is HDFS's own default (dfs.blocksize), so files laid
// out by the development server look like production ones.
const defaultHDFSBlockSize = 128 << 20

func hdfsCommand() *command {
	var (
		listen    string
		dir       string
		blockSize int64
		httpAddr  string
		faults    string
	)
	return &command{
		name:    "hdfs",
		summary: "run an in-process HDFS test server, NameNode + DataNode (development and demos only)",
		usage:   "lambdalog hdfs --listen ADDR [--dir DIR] [--block-size N]",
		long: `Runs lambdalog's in-process HDFS test server: one NameNode and one DataNode
speaking the real Hadoop protocols (IPC v9 with simple authentication, data
transfer v28 with CRC32C checksums), so the HDFS dataset backend, the gohdfs
CLI (HADOOP_NAMENODE=ADDR hdfs ls /) and other Hadoop clients can be tried
without a Hadoop install. It keeps a single replica, has no security (no
Kerberos, no permission checks) and no high availability: it is a test and
demo server, never a home for production data.

The DataNode listens on a free port of the same host. With --dir DIR the
namespace and block data are kept on disk and survive a restart; without it
everything lives in a temporary directory removed on exit. Prints
"hdfs listening on hdfs://ADDR/" once ready and serves until SIGINT or
SIGTERM.

With --faults ADDR it also serves /faults, which arms the test server's
fault hooks from another process (tests and soaks only): POST a JSON fault
such as {"op":"complete","nth":0,"action":"fail"} (actions fail,
fail_after, hang, delay, drop, refuse_complete), GET the calls they acted
on, DELETE to disarm them all.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:8020", "NameNode `ADDR` to listen on (port 0 picks a free one)")
			fs.StringVar(&dir, "dir", "", "`DIR` to keep the namespace and blocks in across restarts (default: a temporary directory)")
			fs.Int64Var(&blockSize, "block-size", defaultHDFSBlockSize, "default block size `N` in bytes, a multiple of 512")
			fs.StringVar(&httpAddr, "http", "127.0.0.1:0", "`ADDR` of /metrics, /healthz and /readyz (empty disables; port 0 picks a free one)")
			fs.StringVar(&faults, "faults", "", "`ADDR` of the fault-injection endpoint /faults (tests and soaks only; empty disables)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %v", args)
			}
			if blockSize <= 0 || blockSize%512 != 0 {
				return usagef("--block-size must be a positive multiple of 512, got %d", blockSize)
			}
			opts := []hdfstest.Option{hdfstest.WithListenAddr(listen), hdfstest.WithBlockSize(blockSize), hdfstest.WithLogger(e.log)}
			if dir != "" {
				opts = append(opts, hdfstest.WithDir(dir))
			}
			s, err := hdfstest.New(opts...)
			if err != nil {
				return fmt.Errorf("hdfs: start test server: %w", err)
			}
			e.log.Info("in-process HDFS test server ready (development and demos only)", "url", s.URL(), "datanode", s.DataNodeAddr(), "dir", dir, "block_size", blockSize)
			fmt.Fprintf(e.stdout, "hdfs listening on %s\n", s.URL())
			wait, err := observe(ctx, e, httpAddr, nil, map[string]obs.Check{
				"namenode": func(ctx context.Context) error {
					var d net.Dialer
					c, err := d.DialContext(ctx, "tcp", s.NameNodeAddr())
					if err == nil {
						c.Close()
					}
					return err
				},
			})
			if err != nil {
				s.Close()
				return err
			}
			waitFaults := func() error { return nil }
			if faults != "" {
				bound, w, err := serveFaults(ctx, faults, s, e.log)
				if err != nil {
					s.Close()
					return err
				}
				waitFaults = w
				fmt.Fprintf(e.stdout, "hdfs faults on http://%s/faults\n", bound)
			}
			<-ctx.Done()
			e.log.Info("stopping HDFS test server")
			if err := s.Close(); err != nil {
				return fmt.Errorf("hdfs: stop test server: %w", err)
			}
			return errors.Join(wait(), waitFaults())
		},
	}
}
