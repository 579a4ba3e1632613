#!/usr/bin/env bash
# Builds every Lambda function of the deployment description for AWS Lambda
# (provided.al2023, arm64): functions/<name> -> build/functions/<name>/bootstrap.
#
# The list of functions comes from infra.Description() (infra/cdk/listfunctions), so a
# function that the description names but that has no functions/<name> directory is an
# error, never skipped.
#
# Usage: scripts/build-functions.sh [name...]   (default: every function in the description)
# KEYLINE_FUNCTIONS_DIR changes the output directory; KEYLINE_FUNCTIONS_GOARCH the
# architecture (default arm64, as deployed; `make bench` builds the host's to start them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${KEYLINE_FUNCTIONS_DIR:-$root/build/functions}"
arch="${KEYLINE_FUNCTIONS_GOARCH:-arm64}"

if [ "$#" -gt 0 ]; then
  names=("$@")
else
  list="$(go run -C "$root/infra/cdk" ./listfunctions)"
  names=()
  [ -z "$list" ] || mapfile -t names <<<"$list"
fi

missing=()
for n in "${names[@]}"; do
  [ -d "functions/$n" ] || missing+=("$n")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "build-functions: the description names functions without a functions/<name> directory: ${missing[*]}" >&2
  exit 1
fi

# One go command builds them all (shared package loading, parallel links), into a staging
# directory; each binary then becomes <out>/<name>/bootstrap.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkgs=()
for n in "${names[@]}"; do pkgs+=("./functions/$n"); done
if [ "${#pkgs[@]}" -gt 0 ]; then
  CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -tags lambda.norpc \
    -ldflags='-s -w -buildid=' -o "$stage/" "${pkgs[@]}"
fi
for n in "${names[@]}"; do
  mkdir -p "$out/$n"
  mv "$stage/$n" "$out/$n/bootstrap"
  echo "build-functions: $n -> ${out#"$root"/}/$n/bootstrap"
done
echo "build-functions: ${#names[@]} function(s) built for linux/$arch"
