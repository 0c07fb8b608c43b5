#!/usr/bin/env bash
# HTTP benchmark of a fresh single node (R1): the figures of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
port=${BENCH_HTTP_PORT:-18080}; rport=${BENCH_RAFT_PORT:-17070}
./bin/weir serve --data-dir "$dir" --http-addr 127.0.0.1:$port --raft-addr 127.0.0.1:$rport --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for i in $(seq 1 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.1; done
S=http://127.0.0.1:$port
echo "== batches of 100 x 1 KiB, 16 producers"
./bin/weir bench produce --server $S --topic b100 --partitions 4 --batch 100 --producers 16 --duration ${BENCH_DURATION:-10s}
echo "== one record per request, one producer"
./bin/weir bench produce --server $S --topic b1 --partitions 1 --batch 1 --producers 1 --duration ${BENCH_DURATION:-10s}
echo "== one record per request at a steady 10,000 records/s"
./bin/weir bench produce --server $S --topic b1r --partitions 4 --batch 1 --producers 64 --rate 10000 --duration ${BENCH_DURATION:-10s}
echo "== consume"
./bin/weir bench consume --server $S --topic b100
