#!/usr/bin/env bash
# Tiered storage benchmark (docs/benchmarks.md, "Tiered storage"), one
# fresh single node (R1) and versitygw on the same disk as the object store:
#   - produce with tiering on vs off (same load, 1 KiB records);
#   - read a cold tiered topic (its closed segments only in object storage,
#     the segment cache empty) vs a local topic, with `weir bench consume`.
# Three rounds, each on fresh topics; prints every figure and the medians.
# BENCH_S3_DIR puts versitygw's files elsewhere than the node's disk (e.g.
# /dev/shm: an object store that does not compete for the broker's disk, as
# a remote one would not).
set -euo pipefail
cd "$(dirname "$0")/.."
vgw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
[ -x "$vgw" ] || { echo "versitygw missing: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2; exit 1; }
records=${BENCH_RECORDS:-300000}
dir=$(mktemp -d)
port=${BENCH_HTTP_PORT:-18080}; rport=${BENCH_RAFT_PORT:-17070}; sport=${BENCH_S3_PORT:-17090}
s3dir=$(mktemp -d -p "${BENCH_S3_DIR:-$dir}")
mkdir -p "$s3dir/data" "$s3dir/meta"
"$vgw" --access benchkey --secret benchsecret --port 127.0.0.1:$sport --quiet posix --sidecar "$s3dir/meta" "$s3dir/data" &
vpid=$!
AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret ./bin/weir serve --data-dir "$dir/node" \
  --http-addr 127.0.0.1:$port --raft-addr 127.0.0.1:$rport --kafka-addr "" --log-level warn \
  --tiered-storage-endpoint http://127.0.0.1:$sport --tiered-storage-bucket bench --tiered-storage-interval 500ms &
pid=$!
trap 'kill $pid $vpid 2>/dev/null; wait $pid $vpid 2>/dev/null; rm -rf "$dir" "$s3dir"' EXIT
S=http://127.0.0.1:$port
for i in $(seq 1 300); do curl -sf $S/readyz >/dev/null && break; sleep 0.1; done

create() { # NAME EXTRA-JSON
  curl -sf -X POST $S/v1/topics -H 'Content-Type: application/json' \
    -d "{\"name\":\"$1\",\"partitions\":4,\"segment_bytes\":4194304$2}" >/dev/null
}
# Each prints the bench output on stderr and the records/s on stdout.
produce() {
  local out; out=$(./bin/weir bench produce --server $S --topic "$1" --records "$records" --record-size 1024 --batch 100 --producers 16)
  echo "$out" >&2; echo "$out" | sed -n 's/.*throughput: \([0-9]*\) records.*/\1/p'
}
consume() {
  local out; out=$(./bin/weir bench consume --server $S --topic "$1")
  echo "$out" >&2; echo "$out" | sed -n 's/.*s: \([0-9]*\) records\/s.*/\1/p'
}
# uploaded TOPIC: every partition's local log starts at its remote end (all
# closed segments uploaded and dropped from the disk).
uploaded() {
  curl -sf $S/v1/topics/$1 | python3 -c '
import json,sys
t=json.load(sys.stdin)
sys.exit(0 if all(p["remote_end_offset"]>0 and p["local_start_offset"]==p["remote_end_offset"] for p in t["partitions"]) else 1)'
}
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

declare -a pon poff con coff
# Rounds alternate which produce goes first: the second one runs while the
# first one's writes are still being flushed.
for r in 1 2 3; do
  create off$r ""
  create on$r ',"tiered":true,"local_retention_bytes":1'
  for mode in $([ $r = 2 ] && echo "on off" || echo "off on"); do
    echo "== round $r: produce, tiering $mode" >&2
    if [ $mode = on ]; then pon+=("$(produce on$r)"); else poff+=("$(produce off$r)"); fi
  done
  ok=0
  for i in $(seq 1 600); do if uploaded on$r; then ok=1; break; fi; sleep 0.1; done
  [ $ok = 1 ] || { echo "on$r was not uploaded in 60 s" >&2; exit 1; }
  echo "== round $r: read a local topic" >&2
  coff+=("$(consume off$r)")
  echo "== round $r: read a cold tiered topic from object storage" >&2
  con+=("$(consume on$r)")
done
echo
echo "produce records/s, tiering off: ${poff[*]} (median $(median "${poff[@]}"))"
echo "produce records/s, tiering on:  ${pon[*]} (median $(median "${pon[@]}"))"
echo "read records/s, local:          ${coff[*]} (median $(median "${coff[@]}"))"
echo "read records/s, cold (remote):  ${con[*]} (median $(median "${con[@]}"))"
# CPU seconds (user + system) the two processes used over the whole run.
cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.1f", ($14+$15)/t}' /proc/$1/stat; }
echo "CPU seconds: weir $(cpu $pid), versitygw $(cpu $vpid)"
