#!/usr/bin/env bash
# `make bench`: runs every benchmark once and prints one line per figure,
#   bench <name> <value> <unit>
# (a ratio followed by `bench <name>_spread <max/min> ratio`, notes as `# <name>: <text>`),
# then fails if a benchmark failed, was skipped or did not build, or if the figures are not
# exactly those of bench/expected.txt. Raw `go test -bench` output is kept in .local/bench.txt.
#
# BENCH=<regexp> runs the matching benchmarks only, BENCH_PKGS="<packages>" only those
# packages of the keyline module (the ESDK peer then runs only if BENCH_PKGS names
# ./bench/esdk/...); either makes the run partial: expected figures may then be missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local
raw="$root/.local/bench.txt"
notes="$root/.local/bench-notes.txt"
: > "$raw"
: > "$notes"
export KEYLINE_BENCH_NOTES="$notes"
start=$(date +%s)

partial=()
if [ -n "${BENCH:-}" ] || [ -n "${BENCH_PKGS:-}" ]; then partial=(-partial); fi

bench() { go test -run '^$' -bench "${BENCH:-.}" -benchtime 1x -count 1 -timeout 60m "$@" >>"$raw" 2>&1 || { echo "make bench: go test $* failed (see .local/bench.txt):" >&2; tail -n 40 "$raw" >&2; exit 1; }; }
export -f bench
export raw BENCH

rc=0
"$root/scripts/with-dynamodb.sh" bash -c 'set -euo pipefail
if [ -n "${BENCH_PKGS:-}" ]; then
  for p in $BENCH_PKGS; do
    case "$p" in
      ./bench/esdk*) (cd bench/esdk && bench -cpu 1 ./...) ;;
      ./internal/sealing*) bench -cpu 1 "$p" ;;
      *) bench "$p" ;;
    esac
  done
  exit 0
fi
# Sealing figures are single-core (-cpu 1), like the ESDK peer and openssl speed.
bench -cpu 1 ./internal/sealing/...
pkgs=$(go list ./... | grep -v /internal/sealing)
bench $pkgs
# The AWS Encryption SDK peer is its own module: it must build and run, or make bench fails.
[ -f bench/esdk/go.mod ] || { echo "make bench: bench/esdk/go.mod is missing" >&2; exit 1; }
(cd bench/esdk && bench -cpu 1 ./...)' || rc=$?

# The figures measured so far are printed even when a benchmark failed.
go run ./internal/benchfmt/cmd/benchfmt -expected bench/expected.txt -notes "$notes" "${partial[@]}" < "$raw" || rc=1
echo "make bench: $(( $(date +%s) - start )) s" >&2
exit "$rc"
