#!/usr/bin/env bash
# Runs a command with one DynamoDB Local (in memory) on a free loopback port, exported to
# it as KEYLINE_TEST_DYNAMODB_ENDPOINT; DynamoDB Local is stopped when the command ends,
# whether it passed or failed. Usage: scripts/with-dynamodb.sh CMD [ARGS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-dynamodb-local.sh"
dir="$root/.local/dynamodb"

port=""
for _ in $(seq 1 50); do
  p=$(( 20000 + RANDOM % 20000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "with-dynamodb: no free port found" >&2; exit 1; }

log=$(mktemp)
# Through the loopback launcher: DynamoDB Local listens on 127.0.0.1 only.
launcher="$dir/loopback-$(sha256sum "$root/internal/local/dynamodb/LoopbackDynamoDBLocal.java" | cut -c1-16)"
(cd "$dir" && exec java -Djava.library.path=DynamoDBLocal_lib -cp "$launcher:DynamoDBLocal.jar:DynamoDBLocal_lib/*" \
  LoopbackDynamoDBLocal -port "$port" -disableTelemetry -inMemory) >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT INT TERM

for i in $(seq 1 200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "with-dynamodb: DynamoDB Local exited:" >&2; cat "$log" >&2; exit 1; fi
  sleep 0.1
done
export KEYLINE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
echo "DynamoDB Local for this run: $KEYLINE_TEST_DYNAMODB_ENDPOINT" >&2
set +e
"$@"
rc=$?
exit $rc
