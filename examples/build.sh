#!/bin/sh
# Builds every example transform to bin/examples/<name>.wasm (make examples).
# Run from anywhere; paths are relative to the repository root.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/bin/examples"
mkdir -p "$out"
cd "$root"
for main in examples/*/main.go; do
	# Only transforms (main packages on the guest SDK) build to Wasm.
	grep -q 'weir/sdk/transform"' "$main" || continue
	dir=$(dirname "$main")
	name=$(basename "$dir")
	echo "building $out/$name.wasm"
	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$out/$name.wasm" "./$dir"
done
