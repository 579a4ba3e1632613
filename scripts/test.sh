#!/usr/bin/env bash
# `make test`: vet and test both Go modules against one DynamoDB Local for the whole run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run() {
  set -e
  echo "== go vet (keyline)" >&2
  go vet ./...
  echo "== go test (keyline)" >&2
  go test -count=1 -timeout 30m ./...
  if [ -f infra/cdk/go.mod ]; then
    echo "== go vet + go test (infra/cdk)" >&2
    (cd infra/cdk && go vet ./... && go test -count=1 -timeout 20m ./...)
  fi
}
export -f run
exec "$root/scripts/with-dynamodb.sh" bash -c run
