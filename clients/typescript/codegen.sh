#!/usr/bin/env bash
# Regenerates the protobuf messages and grpc-js client from
# proto/satchel/v1/satchel.proto with the pinned buf and ts-proto of
# tools/codegen (see buf.gen.yaml for the ts-proto options).
#
#   ./codegen.sh [OUTDIR]   OUTDIR defaults to src/gen, the committed copy
#
# To check for drift: ./codegen.sh /tmp/gen && diff -r /tmp/gen src/gen
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/src/gen}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tools=$root/tools/codegen
if [ ! -x "$tools/node_modules/.bin/buf" ] || [ ! -x "$tools/node_modules/.bin/protoc-gen-ts_proto" ]; then
  npm ci --prefix "$tools" --no-audit --no-fund >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# buf.gen.yaml names the plugin relative to this directory and writes to
# src/gen under -o; generate into a scratch tree, then replace OUTDIR/satchel
# (everything ts-proto writes) with it.
cd "$here"
"$tools/node_modules/.bin/buf" generate "$root" \
  --path "$root/proto/satchel/v1/satchel.proto" \
  --template buf.gen.yaml -o "$tmp"
rm -rf "$out/satchel"
cp -R "$tmp/src/gen/." "$out/"
