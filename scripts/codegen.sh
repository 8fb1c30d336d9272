#!/usr/bin/env bash
# The generated clients' code, from proto/ with pinned generators.
#
#   scripts/codegen.sh          regenerate every client's committed stubs
#   scripts/codegen.sh --check  buf lint; buf breaking against main; and fail
#                               if any committed stub differs from a fresh
#                               generation (stale code)
#
# buf and ts-proto are pinned in tools/codegen (npm), grpcio-tools in
# clients/python/codegen.sh, protoc-gen-go and protoc-gen-go-grpc in
# clients/go/go.mod. Java generates its stubs in its Maven build. Rust
# compiles the protos in proto/build.rs.
#
# BUF_AGAINST overrides what `buf breaking` compares with (a buf input such
# as '.git#branch=main' or '.git#ref=v0.1.0').
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

check=false
[ "${1:-}" = "--check" ] && check=true

if [ ! -x tools/codegen/node_modules/.bin/buf ]; then
  echo "==> npm ci (tools/codegen: buf, ts-proto)"
  npm ci --prefix tools/codegen --no-audit --no-fund --loglevel=error
fi
buf=$root/tools/codegen/node_modules/.bin/buf

# Each client that commits generated code: its directory, and the committed
# directory its codegen.sh writes (relative to the client).
clients=(
  "clients/python src/satchel/v1"
  "clients/go satchelv1"
  "clients/typescript src/gen"
)

if ! $check; then
  for c in "${clients[@]}"; do
    read -r dir out <<<"$c"
    echo "==> $dir/codegen.sh"
    "$dir/codegen.sh" "$root/$dir/$out"
  done
  exit 0
fi

echo "==> buf lint"
"$buf" lint

# What to compare with: main. When the checkout is main itself (CI runs on
# main), the previous commit, so the newest change is still judged.
against=${BUF_AGAINST:-}
if [ -z "$against" ]; then
  if [ "$(git rev-parse HEAD)" = "$(git rev-parse main 2>/dev/null || true)" ]; then
    against=".git#ref=HEAD~1"
  else
    against=".git#branch=main"
  fi
fi
echo "==> buf breaking --against $against"
"$buf" breaking --against "$against"

# The gate itself must be able to fail: renumber a field in a scratch copy
# and expect buf to call that a breaking change.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/proto"
cp -r proto/satchel "$scratch/proto/"
cp buf.yaml "$scratch/"
sed -i 's/string reference = 1;/string reference = 99;/' "$scratch/proto/satchel/v1/satchel.proto"
if (cd "$scratch" && "$buf" breaking --against "$root" >/dev/null 2>&1); then
  echo "buf breaking did not notice a renumbered field" >&2
  exit 1
fi

status=0
for c in "${clients[@]}"; do
  read -r dir out <<<"$c"
  echo "==> $dir: committed stubs match a fresh generation"
  fresh=$scratch/${dir//\//_}
  mkdir -p "$fresh"
  "$dir/codegen.sh" "$fresh" >/dev/null
  if ! diff -r -x __init__.py "$fresh" "$dir/$out"; then
    echo "$dir/$out is stale: run scripts/codegen.sh and commit the result" >&2
    status=1
  fi
done
exit $status
