#!/usr/bin/env bash
# `make bench`: runs every benchmark once and prints one line per figure:
#   bench <name> <value> <unit>
# Raw `go test -bench` output is kept in .local/bench.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local
raw="$root/.local/bench.txt"
: > "$raw"
bench() { go test -run '^$' -bench "${BENCH:-.}" -benchtime 1x -count 1 -timeout 60m "$@" >>"$raw" 2>&1 || { cat "$raw" >&2; exit 1; }; }
export -f bench
export raw
"$root/scripts/with-dynamodb.sh" bash -c 'set -e
bench -cpu 1 ./internal/sealing/...
pkgs=$(go list ./... | grep -v /internal/sealing)
bench $pkgs
if [ -f bench/esdk/go.mod ]; then (cd bench/esdk && bench -cpu 1 ./...) || echo "esdk peer benchmark did not run (see .local/bench.txt)" >&2; fi'
go run ./internal/benchfmt < "$raw"
