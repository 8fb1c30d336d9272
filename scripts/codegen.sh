#!/usr/bin/env bash
# The generated clients' code, from proto/ with pinned generators.
#
#   scripts/codegen.sh          regenerate every client's committed stubs
#   scripts/codegen.sh --check  buf lint; buf breaking against main and
#                               against the API baseline; and fail if any
#                               committed stub differs from a fresh
#                               generation (stale code)
#   scripts/codegen.sh --rebaseline
#                               make the current API the baseline: only for
#                               a release, or a deliberate break of v1
#
# The baseline, proto/baseline/satchel.v1.txtpb, is a buf image of the API
# as last released (or deliberately broken). Checking against it as well as
# against the previous commit means a break cannot land in pieces: CI sees
# only main's newest commit, and a break spread over several commits would
# pass a commit-by-commit check.
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
rebaseline=false
case "${1:-}" in
  --check) check=true ;;
  --rebaseline) rebaseline=true ;;
  "") ;;
  *) echo "usage: scripts/codegen.sh [--check | --rebaseline]" >&2; exit 2 ;;
esac
baseline=proto/baseline/satchel.v1.txtpb

# Install the pinned tools when missing, or when the lockfile changed since
# (npm ci rewrites node_modules/.package-lock.json from it).
installed=tools/codegen/node_modules/.package-lock.json
if [ ! -x tools/codegen/node_modules/.bin/buf ] || [ tools/codegen/package-lock.json -nt "$installed" ]; then
  echo "==> npm ci (tools/codegen: buf, ts-proto)"
  npm ci --prefix tools/codegen --no-audit --no-fund --loglevel=error
fi
buf=$root/tools/codegen/node_modules/.bin/buf

if $rebaseline; then
  "$buf" lint
  mkdir -p "$(dirname "$baseline")"
  "$buf" build --exclude-source-info -o "$baseline"
  echo "==> $baseline now holds the current API; commit it with the change it accepts"
  exit 0
fi

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

# What to compare with: main (or origin/main in a clone without a local
# main). When the checkout is main itself, as in CI, which sees no other
# branch: the previous commit, so at least the newest change is judged
# (or HEAD itself, when the work tree changes the protos).
against=${BUF_AGAINST:-}
if [ -z "$against" ]; then
  main=$(git rev-parse -q --verify main || git rev-parse -q --verify origin/main || true)
  if [ -n "$main" ] && [ "$main" != "$(git rev-parse HEAD)" ]; then
    against=".git#ref=$main"
  elif ! git diff --quiet HEAD -- proto; then
    against=".git#ref=HEAD" # uncommitted changes on main
  elif git rev-parse -q --verify HEAD~1 >/dev/null; then
    against=".git#ref=HEAD~1"
  else
    against=""
  fi
fi
if [ -n "$against" ]; then
  echo "==> buf breaking --against $against"
  "$buf" breaking --against "$against"
else
  echo "==> buf breaking: no earlier commit to compare with"
fi
echo "==> buf breaking --against $baseline"
"$buf" breaking --against "$baseline"

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
