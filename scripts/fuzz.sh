#!/usr/bin/env bash
# Runs every Go fuzz target of the module for the given time each (default 5s).
set -euo pipefail
t=${1:-5s}
cd "$(dirname "$0")/.."
fail=0
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  dir=$(dirname "$file")
  echo "fuzz $dir $name ($t)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} "./$dir" >/tmp/weir-fuzz.log 2>&1; then
    cat /tmp/weir-fuzz.log; fail=1
  fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | grep -v '^./sdk/' | sort)
# The sdk is its own module: its fuzz targets run from there.
while IFS= read -r line; do
  file=${line%%:*}
  name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  dir=$(dirname "${file#sdk/}")
  echo "fuzz sdk/$dir $name ($t)"
  if ! (cd sdk && go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" ${FUZZ_PARALLEL:+-parallel "$FUZZ_PARALLEL"} "./$dir") >/tmp/weir-fuzz.log 2>&1; then
    cat /tmp/weir-fuzz.log; fail=1
  fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' sdk | sort)
exit $fail
