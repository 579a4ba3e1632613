#!/usr/bin/env bash
# `make conformance`: the tests that compare keyline's local runtime with outcomes
# recorded from AWS, read from $KEYLINE_CONFORMANCE_DIR or ../shared/conformance.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="${KEYLINE_CONFORMANCE_DIR:-$root/../shared/conformance}"
if [ ! -d "$dir/stepfunctions" ] || [ ! -d "$dir/eventbridge-patterns" ]; then
  echo "conformance: no conformance suites found at $dir" >&2
  echo "conformance: set KEYLINE_CONFORMANCE_DIR to the folder holding stepfunctions/, eventbridge-patterns/ and kms/" >&2
  exit 1
fi
export KEYLINE_CONFORMANCE_DIR=$(cd "$dir" && pwd)
cd "$root"
# The packages that hold conformance tests (files built with the `conformance` tag).
pkgs=$(grep -rl --include='*_test.go' '^//go:build conformance' . | grep -v node_modules | xargs -n1 dirname | sort -u)
[ -n "$pkgs" ] || { echo "conformance: no conformance tests found" >&2; exit 1; }
exec "$root/scripts/with-dynamodb.sh" go test -count=1 -tags conformance -run Conformance $pkgs
