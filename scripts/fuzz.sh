#!/usr/bin/env bash
# Runs every Go fuzz target of the module for the given time each (default 5s).
set -euo pipefail
t=${1:-5s}
cd "$(dirname "$0")/.."
fail=0
# Each run's own log: two `make test` on one machine (scripts/flake-check.sh)
# must not read each other's fuzz output.
log=$(mktemp "${TMPDIR:-/tmp}/weir-fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT
# run DIR NAME [sdk]: one target. A failure that wrote no failing input is
# the fuzz engine's own (its workers missed a deadline on a loaded
# machine, "context deadline exceeded"), not a finding: it is retried once
# and then reported without failing the run.
run() {
  local dir=$1 name=$2 in=$3
  for attempt in 1 2; do
    if (cd "$in" && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} "./$dir") >"$log" 2>&1; then
      return 0
    fi
    if grep -q 'Failing input written\|panic:\|--- FAIL: Test' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
      cat "$log"; fail=1; return 0
    fi
    echo "fuzz $dir $name: the fuzz engine timed out without a finding (attempt $attempt)"
  done
  cat "$log"
}
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  dir=$(dirname "$file")
  echo "fuzz $dir $name ($t)"
  run "$dir" "$name" .
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | grep -v '^./sdk/' | sort)
# The sdk is its own module: its fuzz targets run from there.
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  dir=$(dirname "${file#sdk/}")
  echo "fuzz sdk/$dir $name ($t)"
  run "$dir" "$name" sdk
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' sdk | sort)
exit $fail
