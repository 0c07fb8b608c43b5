#!/usr/bin/env bash
# Weir against NATS JetStream on the same loads (docs/benchmarks.md, "Weir and
# NATS JetStream" and "Kafka clients (issue 13)"). Builds bin/weir and
# bin/weircmp (the load driver, module bench/), installs a pinned nats-server
# into bin/ if missing, then, RUNS times: for Weir over HTTP (weir), Weir
# through its Kafka listener with franz-go (weir-kafka), NATS default and NATS
# with `sync_interval: always`, on one node (R1) and on three (R3, replicated
# 3 ways), starts fresh servers on loopback and runs async publish, one record
# at a time, a steady 10,000 records/s (BENCH_RATE) and consume from the
# start. Prints the table of medians and ratios, and the servers' CPU time
# per record (user + system of the server processes during the measured
# phase: steadier than records/s on a shared machine); the raw results stay
# in $OUT (JSON lines). Then, unless BENCH_PIPELINE=0, `weir bench pipeline`
# on each of CLUSTERS. ONLY=" " (a space) runs the pipeline rows alone.
#
#   RUNS=3 BENCH_DURATION=5s BENCH_PPROF=0 BENCH_PIPELINE=1 scripts/bench-compare.sh
#   ONLY="weir weir-kafka" CLUSTERS="R1" SCENARIOS="batch steady" ... to run a subset.
#   ONLY="weir weir-prop nats" CLUSTERS=R3: weir-prop is Weir with
#   --follower-writes=propose (writes at a follower proposed through Raft),
#   to compare with the default (forwarded over HTTP to the leader).
#   weir-x is Weir (HTTP) with the extra serve flags of WEIR_X_ARGS, e.g.
#   ONLY="weir weir-x nats" WEIR_X_ARGS="--proposals-in-flight 4".
#   weir-s2 is Weir (HTTP) producing to a topic created with
#   "compression": "s2" (docs/api.md, "Topics").
#   WEIR_ARGS are extra serve flags for every Weir system (e.g. --logdb pebble).
#   SCENARIOS="idle@1000 batch@1000 batch@6": a scenario over a topic of
#   that many partitions (default PARTITIONS=4); idle measures the servers'
#   CPU with no load (cores per process; after weircmp's -idle-wait, 30 s).
#   Many partitions: docs/benchmarks.md, "Many partitions".
#   BASE_REV=<git rev> adds the systems base and base-kafka: the same loads
#   against bin/weir-base built from that revision, alternating with today's
#   build in the same run (an A/B of a change, with NATS beside it); the
#   pipeline rows then run for both builds too.
#   BENCH_VALUES=random: record values of random letters and digits, which
#   LZ codecs (franz-go's snappy, Weir's S2) cannot shrink, instead of the
#   letter x repeated (the default, BENCH_VALUES=x; weircmp -values).
#   Every run also measures the disk alone first (weircmp run -system disk:
#   appends each fsynced, one writer per partition, of 1 KiB (disk) and of
#   1 MiB / PARTITIONS (disk-window: the batch load's 1,000 records in
#   flight); the "disk" table): the fsync latency under any broker that
#   syncs before it acknowledges. BENCH_DISK=0 leaves it out. The main table has the load
#   generator's own CPU per record beside the servers' (client CPU).
#   Ports: BENCH_HTTP_PORT (18580), BENCH_RAFT_PORT (17580), BENCH_NATS_PORT
#   (14222, +100, +200), BENCH_KAFKA_PORT (BENCH_HTTP_PORT+200); node i uses
#   port+i-1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
NATS_VERSION=v2.15.3          # pinned; builds with Go 1.26 from the module proxy
RUNS=${RUNS:-3}
D=${BENCH_DURATION:-5s}
ONLY=${ONLY:-"weir weir-kafka nats nats-sync"}
CLUSTERS=${CLUSTERS:-"R1 R3"}
SCENARIOS=${SCENARIOS:-"batch one steady consume"}
PARTITIONS=${PARTITIONS:-4}
RATE=${BENCH_RATE:-10000}
VALUES=${BENCH_VALUES:-x}
hp=${BENCH_HTTP_PORT:-18580}; rp=${BENCH_RAFT_PORT:-17580}; np=${BENCH_NATS_PORT:-14222}
kp=${BENCH_KAFKA_PORT:-$((hp+200))}

mkdir -p bin
if [ -z "${BENCH_NOBUILD:-}" ]; then
  echo "building bin/weir and bin/weircmp" >&2
  go build -o bin/weir ./cmd/weir
  (cd bench && go build -o ../bin/weircmp .)
fi
if [ -n "${BASE_REV:-}" ]; then
  echo "building bin/weir-base from $BASE_REV" >&2
  basetree=$(mktemp -d)
  git worktree add -q --detach "$basetree" "$BASE_REV"
  (cd "$basetree" && go build -o "$root/bin/weir-base" ./cmd/weir)
  git worktree remove --force "$basetree"
  case " $ONLY " in *" base "*) ;; *) ONLY="$ONLY base" ;; esac
fi
if ! [ -x bin/nats-server ] || ! bin/nats-server --version | grep -q "$NATS_VERSION"; then
  echo "installing nats-server $NATS_VERSION into bin/" >&2
  GOBIN="$root/bin" go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
fi

work=$(mktemp -d)
OUT=${OUT:-$work/results.jsonl}
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$work/data"' EXIT

wait_http() { # URL
  for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return; sleep 0.1; done
  echo "$1 did not answer" >&2; exit 1
}

start_weir() { # nodes [kafka|prop|x] [binary]: "kafka": node i also listens for Kafka on kp+i-1; "prop": --follower-writes=propose; "x": the flags of WEIR_X_ARGS
  local n=$1 kafka=${2:-} bin=${3:-./bin/weir} peers="" i
  rm -rf "$work/data"; mkdir -p "$work/data"
  for i in $(seq 1 "$n"); do peers+="${peers:+,}$i=127.0.0.1:$((rp+i-1))"; done
  for i in $(seq 1 "$n"); do
    local extra=()
    [ "$n" -gt 1 ] && extra+=(--peers "$peers")
    [ "${BENCH_PPROF:-0}" = 1 ] && extra+=(--pprof-addr "127.0.0.1:$((hp+100+i-1))")
    if [ "$kafka" = kafka ]; then
      extra+=(--kafka-addr "127.0.0.1:$((kp+i-1))" --kafka-advertised-addr "127.0.0.1:$((kp+i-1))")
    else
      extra+=(--kafka-addr "")
    fi
    [ "$kafka" = prop ] && extra+=(--follower-writes propose)
    extra+=(${WEIR_ARGS:-})
    [ "$kafka" = x ] && extra+=(${WEIR_X_ARGS:-})
    "$bin" serve --node-id "$i" --data-dir "$work/data/n$i" --http-addr "127.0.0.1:$((hp+i-1))" \
      --raft-addr "127.0.0.1:$((rp+i-1))" --log-level error "${extra[@]}" \
      >>"$work/weir.log" 2>&1 &
    pids+=($!)
  done
  servers=""; kservers=""
  for i in $(seq 1 "$n"); do
    wait_http "http://127.0.0.1:$((hp+i-1))/readyz"
    servers+="${servers:+,}http://127.0.0.1:$((hp+i-1))"
    kservers+="${kservers:+,}127.0.0.1:$((kp+i-1))"
  done
}

start_nats() { # nodes sync(0|1)
  local n=$1 sync=$2 i j routes=""
  rm -rf "$work/data"; mkdir -p "$work/data"
  for j in $(seq 1 "$n"); do routes+="${routes:+, }nats-route://127.0.0.1:$((np+100+j-1))"; done
  for i in $(seq 1 "$n"); do
    local conf="$work/data/n$i.conf"
    {
      echo "server_name: n$i"
      echo "listen: 127.0.0.1:$((np+i-1))"
      echo "http: 127.0.0.1:$((np+200+i-1))"
      echo "jetstream { store_dir: \"$work/data/n$i\""
      [ "$sync" = 1 ] && echo "  sync_interval: always"
      echo "}"
      [ "$n" -gt 1 ] && echo "cluster { name: bench, listen: 127.0.0.1:$((np+100+i-1)), routes: [ $routes ] }"
    } >"$conf"
    ./bin/nats-server -c "$conf" >>"$work/nats.log" 2>&1 &
    pids+=($!)
  done
  servers=""
  for i in $(seq 1 "$n"); do
    wait_http "http://127.0.0.1:$((np+200+i-1))/healthz"
    servers+="${servers:+,}nats://127.0.0.1:$((np+i-1))"
  done
}

run_scenarios() { # label system cluster replicas topic servers [weircmp flags...]
  local s label=$1 system=$2 cluster=$3 replicas=$4 topic=$5 srv=$6
  shift 6
  for s in $SCENARIOS; do
    # SCENARIO@P: over a topic of P partitions (NATS: P streams) of its
    # own; plain SCENARIO: PARTITIONS (4).
    local parts=$PARTITIONS scen=$s
    case $s in *@*) scen=${s%@*}; parts=${s#*@} ;; esac
    # A failed scenario (e.g. a peer not ready) is reported and skipped:
    # the medians come from the runs that completed (the report says how many).
    ./bin/weircmp run -system "$system" -label "$label" -cluster "$cluster" -replicas "$replicas" -topic "${topic}p$parts" \
      -partitions "$parts" -servers "$srv" -scenario "$scen" -duration "$D" -rate "$RATE" -values "$VALUES" \
      -server-pids "$(IFS=,; echo "${pids[*]}")" "$@" ${WEIRCMP_FLAGS:-} | tee -a "$OUT" ||
      echo "scenario $s of $label ($cluster) failed; skipped" >&2
  done
}

echo "results: $OUT" >&2
for run in $(seq 1 "$RUNS"); do
  if [ "${BENCH_DISK:-1}" = 1 ]; then
    # The disk's own append+fsync latency, one writer per partition, with
    # no server running (bench/disk.go): the floor under a fsyncing broker.
    # disk: one record per append (a steady record); disk-window: a
    # quarter of 1,000 records of 1 KiB per append (the batch load's
    # window, 1 MiB, over 4 partitions).
    echo "== run $run, disk" >&2
    ./bin/weircmp run -system disk -label disk -scenario fsync -partitions "$PARTITIONS" -duration "$D" \
      -dir "$work/disk" | tee -a "$OUT" || echo "disk row failed; skipped" >&2
    ./bin/weircmp run -system disk -label disk-window -scenario fsync -partitions "$PARTITIONS" -duration "$D" \
      -size $((1024 * 1024 / PARTITIONS)) -dir "$work/disk" | tee -a "$OUT" || echo "disk-window row failed; skipped" >&2
  fi
  for cl in $CLUSTERS; do
    nodes=1; [ "$cl" = R3 ] && nodes=3
    for sys in $ONLY; do
      echo "== run $run, $cl, $sys" >&2
      case $sys in
        weir) start_weir $nodes; run_scenarios weir weir "$cl" $nodes "b$run" "$servers" ;;
        weir-prop) [ "$nodes" = 1 ] && { stop; continue; } # only differs with followers
          start_weir $nodes prop; run_scenarios weir-prop weir "$cl" $nodes "b$run" "$servers" ;;
        weir-x) start_weir $nodes x; run_scenarios weir-x weir "$cl" $nodes "b$run" "$servers" ;;
        weir-s2) start_weir $nodes # Weir over HTTP onto a topic with "compression": "s2"
          run_scenarios weir-s2 weir "$cl" $nodes "b$run" "$servers" -compression s2 ;;
        weir-kafka) start_weir $nodes kafka
          run_scenarios weir-kafka kafka "$cl" $nodes "b$run" "$kservers" -http-servers "$servers" ;;
        weir-quota) start_weir $nodes # a default quota so generous it is never hit: the check's cost
          for srv in ${servers//,/ }; do
            curl -sf -X PUT "$srv/v1/quotas/default" -d '{"produce_bytes_per_sec":1125899906842624,"fetch_bytes_per_sec":1125899906842624,"requests_per_sec":1125899906842624}' >/dev/null
            break # stored in the replicated catalog: one node is enough
          done
          run_scenarios weir-quota weir "$cl" $nodes "b$run" "$servers" ;;
        base) start_weir $nodes "" ./bin/weir-base; run_scenarios base weir "$cl" $nodes "b$run" "$servers" ;;
        base-kafka) start_weir $nodes kafka ./bin/weir-base
          run_scenarios base-kafka kafka "$cl" $nodes "b$run" "$kservers" -http-servers "$servers" ;;
        nats) start_nats $nodes 0; run_scenarios nats nats "$cl" $nodes "b$run" "$servers" ;;
        nats-sync) start_nats $nodes 1; run_scenarios nats-sync nats "$cl" $nodes "b$run" "$servers" ;;
        *) echo "unknown system $sys (weir, weir-prop, weir-x, weir-s2, weir-kafka, weir-quota, nats, nats-sync, base, base-kafka)" >&2; exit 2 ;;
      esac
      stop
    done
  done
done
echo
echo "Weir (HTTP, Kafka/franz-go) vs NATS JetStream $NATS_VERSION, 1 KiB values ($VALUES: weircmp -values), $PARTITIONS partitions (streams) unless a row says, $RUNS runs, $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -s "$OUT" ]; then ./bin/weircmp report "$OUT"; else echo "(no scenario ran)"; fi

if [ "${BENCH_PIPELINE:-1}" = 1 ]; then
  mkdir -p bin/examples
  [ -f bin/examples/passthrough.wasm ] || GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared \
    -o bin/examples/passthrough.wasm ./examples/passthrough
  builds=./bin/weir; [ -n "${BASE_REV:-}" ] && builds="./bin/weir-base ./bin/weir"
  for g in at_least_once exactly_once; do
    for run in $(seq 1 "$RUNS"); do
      for b in $builds; do
       for cl in $CLUSTERS; do # R3: input and output topics replicated 3 ways
        nodes=1; [ "$cl" = R3 ] && nodes=3
        start_weir $nodes "" "$b"
        echo "== pipeline $g, $cl, run $run, $b"
        "$b" bench pipeline --server "${servers%%,*}" --module bin/examples/passthrough.wasm \
          --records "${BENCH_PIPELINE_RECORDS:-1000000}" --guarantee $g | tail -2 ||
          echo "pipeline $g ($cl, run $run, $b) failed; skipped" # reported, the other runs go on
        stop
       done
      done
    done
  done
fi
