#!/usr/bin/env bash
# Synthesizes keyline's CDK app into cdk.out/ offline: no AWS credentials, no context
# lookups, CLI telemetry off. Builds the function bootstraps first (the stack's Lambda code
# assets), unless KEYLINE_FUNCTIONS_DIR points at prebuilt ones.
#
# The stack is environment-agnostic unless CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION are
# both set. `make deploy` / `make diff` use the CDK CLI in tools/node with the same app.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CDK_DISABLE_CLI_TELEMETRY=true
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
export JSII_DEPRECATED=quiet

if [ -z "${KEYLINE_FUNCTIONS_DIR:-}" ]; then
  bash scripts/build-functions.sh
fi

out="${CDK_OUTDIR:-$root/cdk.out}"
rm -rf "$out"
mkdir -p "$out"
# The app writes the cloud assembly to $CDK_OUTDIR (what the CDK CLI sets when it runs it).
CDK_OUTDIR="$out" go run -C "$root/infra/cdk" .
test -f "$out/manifest.json" || { echo "synth: no cloud assembly in $out" >&2; exit 1; }
echo "synth: cloud assembly in ${out#$root/}/ ($(ls "$out"/*.template.json | xargs -n1 basename | tr '\n' ' '))"
