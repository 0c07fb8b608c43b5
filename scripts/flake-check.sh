#!/usr/bin/env bash
# flake-check.sh: `make test` N times in a row on a fresh clone while
# another `make test` runs beside it in a second clone (issue 16: a test
# that passes on a quiet machine and fails beside another run is a bug).
#
#   scripts/flake-check.sh            # RUNS=5, clones into $TMPDIR
#   RUNS=2 scripts/flake-check.sh
#
# Prints one line per run of the measured clone, `run i/N: ok|FAIL (s)`,
# keeps the logs in $WORK (printed first) and exits non-zero on the first
# failure. The neighbour loops `make test` until the measured runs end; its
# failures are logged but do not decide the result.
set -uo pipefail
RUNS=${RUNS:-5}
SRC=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weir-flake.XXXXXX")
echo "flake-check: logs in $WORK"
git clone -q "$SRC" "$WORK/a"
git clone -q "$SRC" "$WORK/b"
# What .ci/run prepares besides installing packages: the AssemblyScript
# compiler of each clone, and Go-installed tools (versitygw) on PATH.
for c in a b; do
  if command -v npm >/dev/null 2>&1; then
    (cd "$WORK/$c/sdk/ts" && npm ci --no-audit --no-fund >/dev/null 2>&1)
  fi
done
export PATH="$PATH:$(go env GOPATH)/bin"
(
  i=0
  while [ ! -e "$WORK/done" ]; do
    i=$((i + 1))
    if (cd "$WORK/b" && make test >"$WORK/neighbour-$i.log" 2>&1); then r=ok; else r=FAIL; fi
    echo "neighbour run $i: $r" >>"$WORK/neighbour.txt"
  done
) &
nb=$!
rc=0
for i in $(seq 1 "$RUNS"); do
  t0=$(date +%s)
  if (cd "$WORK/a" && make test >"$WORK/run-$i.log" 2>&1); then
    echo "run $i/$RUNS: ok ($(( $(date +%s) - t0 )) s)"
  else
    echo "run $i/$RUNS: FAIL ($(( $(date +%s) - t0 )) s): $WORK/run-$i.log"
    grep -E -- '^(--- FAIL|FAIL|panic:)' "$WORK/run-$i.log" | head -20
    rc=1
    break
  fi
done
touch "$WORK/done"
wait "$nb"
cat "$WORK/neighbour.txt" 2>/dev/null
exit $rc
