#!/usr/bin/env bash
# Sequential throughput of the local and HDFS backends next to dd writing
# the same 64 MiB with conv=fsync to the same disk, in one run, with ratios.
#   internal/storage/bench.sh                 # files under $TMPDIR
#   STORAGE_BENCH_DIR=/data internal/storage/bench.sh
#   BENCHTIME=5x internal/storage/bench.sh
set -euo pipefail
cd "$(dirname "$0")"
out=$(go test -run '^$' -bench '^BenchmarkSequential$' -benchmem -benchtime "${BENCHTIME:-3x}" .)
echo "$out"
echo "$out" | awk '
  /^BenchmarkSequential\// {
    split($1, p, "/"); name = p[2]; sub(/-[0-9]+$/, "", name)
    for (i = 2; i <= NF; i++) if ($(i+1) == "MB/s") mbs[name] = $i
  }
  END {
    printf "\nratios (same run, same disk):\n"
    if (mbs["dd-write"] > 0) {
      printf "  local-write / dd-write = %.2f\n", mbs["local-write"] / mbs["dd-write"]
      printf "  hdfs-write  / dd-write = %.2f\n", mbs["hdfs-write"] / mbs["dd-write"]
    }
    if (mbs["local-read"] > 0)
      printf "  hdfs-read   / local-read = %.3f\n", mbs["hdfs-read"] / mbs["local-read"]
  }'
