#!/usr/bin/env bash
# `make test`: vet and test both Go modules (keyline's under -race) against one DynamoDB Local for the whole run,
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
  # Every package runs under the race detector (KEYLINE_TEST_RACE=0 turns it off, for a
  # quick run while debugging): the local runtime, the workflows and the stacks the tests
  # start are all concurrent, and most packages' tests drive them.
  race=(-race)
  if [ "${KEYLINE_TEST_RACE:-1}" = 0 ]; then race=(); fi
  echo "== go test ${race[*]} (keyline)" >&2
  go test "${race[@]}" -count=1 -timeout 30m ./...
  if [ -f infra/cdk/go.mod ]; then
    echo "== go vet + go test (infra/cdk)" >&2
    (cd infra/cdk && go vet ./... && go test -count=1 -timeout 20m ./...)
  fi
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
