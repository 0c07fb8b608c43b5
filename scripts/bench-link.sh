#!/usr/bin/env bash
# Cluster link mirror lag under a steady load (docs/geo-replication.md):
# two fresh single-node clusters on this machine, A (source) and B
# (destination, a link to A for "bench*"). Each round produces to a new
# 4-partition topic on A at BENCH_RATE records/s (default 10,000; 256-byte
# records, batches of 100) for BENCH_SECONDS (default 30) with
# `weir bench produce --rate`, while scripts/linklag tails the mirror on B
# and measures, per record, the time it became readable on B minus its
# timestamp on A. Three rounds; prints each and the median p50/p99.
# Figures from this script are not NATS-paired: they do not go in
# docs/benchmarks.md's comparison tables.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${BENCH_RATE:-10000}; secs=${BENCH_SECONDS:-30}
records=$((rate * secs))
dir=$(mktemp -d)
pa=${BENCH_HTTP_PORT:-18080}; pb=$((pa + 1)); ra=${BENCH_RAFT_PORT:-17070}; rb=$((ra + 1))
[ -x ./bin/weir ] || go build -o bin/weir ./cmd/weir
go build -o "$dir/linklag" ./scripts/linklag
./bin/weir serve --data-dir "$dir/a" --http-addr 127.0.0.1:$pa --raft-addr 127.0.0.1:$ra --kafka-addr "" --log-level warn &
apid=$!
./bin/weir serve --data-dir "$dir/b" --http-addr 127.0.0.1:$pb --raft-addr 127.0.0.1:$rb --kafka-addr "" --log-level warn &
bpid=$!
trap 'kill $bpid 2>/dev/null; wait $bpid 2>/dev/null; kill $apid 2>/dev/null; wait $apid 2>/dev/null; rm -rf "$dir"' EXIT
A=http://127.0.0.1:$pa; B=http://127.0.0.1:$pb
for s in $A $B; do for i in $(seq 1 300); do curl -sf $s/readyz >/dev/null && break; sleep 0.1; done; done
./bin/weir link create bench --server $B --source $A --topics 'bench*' >/dev/null

declare -a p50s p99s
for r in 1 2 3; do
  curl -sf -X POST $A/v1/topics -H 'Content-Type: application/json' -d "{\"name\":\"bench$r\",\"partitions\":4}" >/dev/null
  "$dir/linklag" -server $B -topic bench$r -records $records -duration $((secs + 60))s > "$dir/lag$r" &
  lpid=$!
  ./bin/weir bench produce --server $A --topic bench$r --records $records --rate $rate --record-size 256 --batch 100 --producers 4 >&2
  wait $lpid
  cat "$dir/lag$r"
  p50s+=("$(sed -n 's/.*p50 \([0-9]*\) ms.*/\1/p' "$dir/lag$r")")
  p99s+=("$(sed -n 's/.*p99 \([0-9]*\) ms.*/\1/p' "$dir/lag$r")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
echo "mirror lag at $rate records/s over 3 rounds: median p50 $(median "${p50s[@]}") ms, median p99 $(median "${p99s[@]}") ms"
