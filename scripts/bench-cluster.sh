#!/usr/bin/env bash
# Cluster benchmarks (R3): the figures of docs/benchmarks.md "## Cluster".
# Starts a fresh local 3-node cluster (bin/weir dev), runs the loads, stops it.
#   BENCH_DURATION   per load (default 15s)
#   BENCH_PARTITIONS 1000-partition memory run when set to a number (e.g. 1000)
set -euo pipefail
command -v jq >/dev/null || { echo "bench-cluster.sh needs jq (apt-get install jq)"; exit 1; }
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
hp=${BENCH_HTTP_PORT:-18180}; rp=${BENCH_RAFT_PORT:-17170}
d=${BENCH_DURATION:-15s}
./bin/weir dev --nodes 3 --data-dir "$dir" --http-port $hp --raft-port $rp >"$dir/dev.log" 2>&1 &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$dir"' EXIT
S=(http://127.0.0.1:$hp http://127.0.0.1:$((hp+1)) http://127.0.0.1:$((hp+2)))
for s in "${S[@]}"; do for i in $(seq 1 300); do curl -sf $s/readyz >/dev/null && break; sleep 0.1; done; done
settle() { # until every partition has a leader, none moves, none lags
  for i in $(seq 1 1200); do
    st=$(curl -sf "${S[0]}/v1/cluster" || true)
    [ -n "$st" ] && [ "$(echo "$st" | jq '.leaderless + .moving + (.lagging|length)')" = 0 ] && return
    sleep 0.5
  done; echo "cluster did not settle"; exit 1; }
rss() { for p in $(pgrep -P $dev); do echo "pid $p rss $(($(awk '/VmRSS/{print $2}' /proc/$p/status)/1024)) MiB"; done; }

curl -sf -XPOST ${S[0]}/v1/topics -d '{"name":"r3","partitions":6}' >/dev/null
curl -sf -XPOST ${S[0]}/v1/topics -d '{"name":"one","partitions":1}' >/dev/null
settle; sleep 4; settle   # preferred leaders take over
echo "== R3, batches of 100 x 1 KiB, 3 clients (one per node) x 8 producers, 6 partitions"
pids=()
for i in 0 1 2; do
  ./bin/weir bench produce --server ${S[$i]} --topic r3 --partitions 6 --batch 100 --producers 8 --duration $d >"$dir/b$i.txt" &
  pids+=($!)
done
wait "${pids[@]}"
cat "$dir"/b*.txt
leader=$(curl -sf "${S[0]}/v1/cluster?partitions=true" | jq '.partition_list[] | select(.topic=="one") | .leader')
other=$(( leader % 3 + 1 ))
echo "== one record per request, one producer, through the leader (node $leader)"
./bin/weir bench produce --server ${S[$((leader-1))]} --topic one --batch 1 --producers 1 --duration $d
echo "== one record per request, one producer, through a follower's node (node $other: forwarded)"
./bin/weir bench produce --server ${S[$((other-1))]} --topic one --batch 1 --producers 1 --duration $d
rss
if [ -n "${BENCH_PARTITIONS:-}" ]; then
  echo "== $BENCH_PARTITIONS partitions, RF 3"
  t0=$(date +%s)
  # The create answers once this node's replicas have leaders; on a busy
  # machine that can take longer than the request's 30 s: settle decides.
  curl -s -m 120 -XPOST ${S[0]}/v1/topics -d "{\"name\":\"many\",\"partitions\":$BENCH_PARTITIONS}" >/dev/null || true
  settle
  echo "created and settled in $(( $(date +%s) - t0 )) s"
  sleep 20; settle; rss
  curl -sf ${S[0]}/v1/cluster | jq -c '.nodes[] | {id, replicas, leaders, heap_mib: (.heap_bytes/1048576|floor)}'
  top -b -n 1 -p "$(pgrep -P $dev | paste -sd,)" | tail -4
  ./bin/weir bench produce --server ${S[0]} --topic many --batch 100 --producers 16 --duration $d
fi
