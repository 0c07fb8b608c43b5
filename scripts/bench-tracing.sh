#!/usr/bin/env bash
# Tracing overhead on produce throughput (docs/benchmarks.md, "## Tracing").
#
#   scripts/bench-tracing.sh [BASE_BIN]
#
# Runs `weir bench produce` against a fresh single node per run, in
# interleaved rounds, for each configuration:
#   off   no OTEL_* variable (tracing off: the default)
#   1%    OTLP/HTTP export to a local sink (scripts/otlpsink) with
#         OTEL_TRACES_SAMPLER=parentbased_traceidratio, ARG=0.01
#   100%  the same with every trace sampled (for reference)
#   base  BASE_BIN, when given: a build without the telemetry code, to
#         show what tracing off costs
# and prints each run, then per configuration and workload the median and
# mean records/s and the lowest server CPU time per record (user + system, from
# /proc). Other load on the machine only adds to the CPU time, so its
# minimum over rounds is the steadiest figure on a shared machine.
# ROUNDS (default 3), BENCH_DURATION (default 10s), WORKLOADS (default
# "batch single") and CONFIGS (default "off 1% 100%", plus base when
# BASE_BIN is given) tune it; the nodes log to
# $TMPDIR/weir-bench-tracing-serve.log.
set -euo pipefail
cd "$(dirname "$0")/.."
base_bin=${1:-}
rounds=${ROUNDS:-3}
dur=${BENCH_DURATION:-10s}
port=${BENCH_HTTP_PORT:-18090}; rport=${BENCH_RAFT_PORT:-17090}; sport=${BENCH_SINK_PORT:-14318}
[ -x bin/weir ] || make build >/dev/null
[ -x bin/otlpsink ] || go build -o bin/otlpsink ./scripts/otlpsink
sinkout=$(mktemp "${TMPDIR:-/tmp}/weir-otlpsink.XXXXXX") # per run: two runs side by side never share it
./bin/otlpsink -addr 127.0.0.1:$sport > "$sinkout" &
sink=$!
pid=
dir=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  [ -n "$dir" ] && rm -rf "$dir"
  kill -INT $sink 2>/dev/null; wait $sink 2>/dev/null || true
  cat "$sinkout" 2>/dev/null || true
  rm -f "$sinkout"
}
trap cleanup EXIT

S=http://127.0.0.1:$port
run() { # run CONFIG WORKLOAD -> prints records/s
  local cfg=$1 wl=$2 bin=./bin/weir
  local -a env=()
  case $cfg in
    base) bin=$base_bin ;;
    1%) env=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sport OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
    100%) env=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sport OTEL_TRACES_SAMPLER=parentbased_always_on) ;;
  esac
  dir=$(mktemp -d)
  env "${env[@]}" $bin serve --data-dir "$dir" --http-addr 127.0.0.1:$port --raft-addr 127.0.0.1:$rport --log-level warn 2>>"${TMPDIR:-/tmp}/weir-bench-tracing-serve.log" &
  pid=$!
  for i in $(seq 1 100); do curl -sf $S/readyz >/dev/null && break; sleep 0.1; done
  local out
  case $wl in
    batch) out=$(./bin/weir bench produce --server $S --topic b100 --partitions 4 --batch 100 --producers 16 --duration $dur) ;;
    single) out=$(./bin/weir bench produce --server $S --topic b1 --partitions 4 --batch 1 --producers 16 --duration $dur) ;;
  esac
  local ticks n
  ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)
  kill $pid; wait $pid 2>/dev/null || true; pid=
  rm -rf "$dir"; dir=
  n=$(echo "$out" | sed -n 's/^produce: \([0-9]*\) records.*/\1/p')
  echo "$(echo "$out" | sed -n 's/.*throughput: \([0-9]*\) records\/s.*/\1/p') $(awk -v t="$ticks" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
}

read -r -a configs <<< "${CONFIGS:-off 1% 100%}"
[ -n "$base_bin" ] && configs=(base "${configs[@]}")
read -r -a workloads <<< "${WORKLOADS:-batch single}"
declare -A results cpus
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minimum() { printf '%s\n' "$@" | sort -g | head -1; }
mean() { printf '%s\n' "$@" | awk '{s+=$1} END {printf "%.0f", s/NR}'; }
for wl in "${workloads[@]}"; do
  for r in $(seq 1 "$rounds"); do
    for cfg in "${configs[@]}"; do
      read -r v cpu < <(run "$cfg" "$wl")
      echo "round $r  workload $wl  tracing $cfg: $v records/s, $cpu µs CPU per record"
      results[$wl/$cfg]+="$v "
      cpus[$wl/$cfg]+="$cpu "
    done
  done
done
echo
echo "over $rounds rounds of $dur: median and mean records/s, lowest server CPU µs per record"
for wl in "${workloads[@]}"; do
  for cfg in "${configs[@]}"; do
    echo "  $wl  $cfg: median $(median ${results[$wl/$cfg]}), mean $(mean ${results[$wl/$cfg]}) records/s, $(minimum ${cpus[$wl/$cfg]}) µs/record"
  done
done
