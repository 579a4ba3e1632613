#!/usr/bin/env bash
# `make test`: vet and test both Go modules (keyline's packages with goroutines under -race) against one DynamoDB Local for the whole run,
# recording every IAM decision the local endpoint makes (KEYLINE_IAM_RECORD), then replay
# them through the independent simulator (tools/node/iam-compare.mjs):
#   iam decisions: N compared, M disagree
# and fail if any disagree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local
decisions="$root/.local/iam-decisions.jsonl"
: > "$decisions"
export KEYLINE_IAM_RECORD="$decisions"
run() {
  set -e
  echo "== go vet (keyline)" >&2
  go vet ./...
  # The packages whose own code starts goroutines (go statements, errgroup, fanout.Each) run
  # under the race detector, except the whole-deployment ones (internal/acceptance,
  # internal/local/stack: under -race they take over ten minutes on a 2-core machine; the
  # concurrent parts they drive are raced in their own packages). KEYLINE_TEST_RACE=0 turns -race off for a quick run.
  local all race rest
  all=$(go list ./...)
  race=$(go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
    case "$pkg" in */internal/acceptance|*/internal/local/stack) continue ;; esac
    if grep -lqE '^[[:space:]]*go (func|[A-Za-z_][A-Za-z0-9_.]*\()|errgroup|fanout\.Each' $(ls "$dir"/*.go 2>/dev/null | grep -v '_test\.go$') /dev/null 2>/dev/null; then
      echo "$pkg"
    fi
  done)
  if [ "${KEYLINE_TEST_RACE:-1}" = 0 ]; then race=""; fi
  # The acceptance scenarios run from the start, alongside the rest of the suite: most of their
  # time is spent waiting on their deployment (executions, events), not on the machine's cores.
  # Their output is printed when they end.
  local acceptance=github.com/keyline/keyline/internal/acceptance acc_log acc_pid acc_status=0
  acc_log=$(mktemp)
  echo "== go test (keyline: $acceptance, alongside the rest)" >&2
  go test -count=1 -timeout 30m "$acceptance" >"$acc_log" 2>&1 &
  acc_pid=$!
  # The CDK module's tests (one synthesis, mostly node's time) run alongside too.
  local cdk_log cdk_pid=""
  if [ -f infra/cdk/go.mod ]; then
    cdk_log=$(mktemp)
    echo "== go vet + go test (infra/cdk, alongside the rest)" >&2
    (cd infra/cdk && go vet ./... && go test -count=1 -timeout 20m ./...) >"$cdk_log" 2>&1 &
    cdk_pid=$!
  fi
  stop_background() { kill "$acc_pid" $cdk_pid 2>/dev/null || true; }
  rest=$(comm -23 <(sort <<<"$all") <(sort <<<"$race") | grep -vx "$acceptance")
  if [ -n "$race" ]; then
    echo "== go test -race (keyline: $(wc -l <<<"$race") packages with goroutines)" >&2
    go test -race -count=1 -timeout 30m $race || { stop_background; exit 1; }
  fi
  echo "== go test (keyline: the other $(wc -l <<<"$rest") packages)" >&2
  go test -count=1 -timeout 30m $rest || { stop_background; exit 1; }
  local cdk_status=0
  if [ -n "$cdk_pid" ]; then
    wait "$cdk_pid" || cdk_status=$?
    echo "== go vet + go test (infra/cdk):" >&2
    cat "$cdk_log"
    rm -f "$cdk_log"
  fi
  wait "$acc_pid" || acc_status=$?
  echo "== $acceptance:" >&2
  cat "$acc_log"
  rm -f "$acc_log"
  [ "$cdk_status" -eq 0 ] && [ "$acc_status" -eq 0 ]
}
export -f run
"$root/scripts/with-dynamodb.sh" bash -c run
echo "== iam-simulate: the suite's IAM decisions replayed" >&2
unset KEYLINE_IAM_RECORD
out=$(cd tools/node && node iam-compare.mjs "$decisions") || status=$?
summary=$(grep -E '^iam decisions: [0-9]+ compared, [0-9]+ disagree$' <<<"$out" || true)
if [ -z "$summary" ]; then
  echo "$out" >&2
  echo "iam-compare printed no summary" >&2
  exit 1
fi
echo "$summary"
if [ "${status:-0}" -ne 0 ] || ! grep -q ', 0 disagree$' <<<"$summary"; then
  grep -v '^iam decisions:' <<<"$out" | head -40 >&2
  exit 1
fi
# A comparison of a handful of decisions proves nothing: the suite runs with enforcement on,
# so fewer than this many recorded decisions means the recording (or the enforcement) broke.
min_decisions=2000
compared=$(sed -E 's/^iam decisions: ([0-9]+) compared.*/\1/' <<<"$summary")
if [ "$compared" -lt "$min_decisions" ]; then
  echo "only $compared IAM decisions recorded, want at least $min_decisions: is enforcement on in the tests?" >&2
  exit 1
fi
