#!/usr/bin/env bash
# Regenerates the Go stubs from proto/satchel/v1/satchel.proto.
#
#   ./codegen.sh [OUTDIR]   (default: satchelv1, the committed copy)
#
# The generators are the versions pinned in go.mod's tool directives
# (protoc-gen-go from google.golang.org/protobuf, protoc-gen-go-grpc from
# google.golang.org/grpc/cmd/protoc-gen-go-grpc); buf is the one pinned in
# tools/codegen. Only the Go module proxy and npm are contacted.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/satchelv1}
mkdir -p "$out"
out=$(cd "$out" && pwd)

export PATH=/usr/local/go/bin:$PATH
buf=$root/tools/codegen/node_modules/.bin/buf
if [ ! -x "$buf" ]; then
  npm ci --prefix "$root/tools/codegen" >&2
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(
  cd "$here"
  go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
  go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
)

rm -f "$out/satchel.pb.go" "$out/satchel_grpc.pb.go"
cd "$root"
PATH=$bin:$PATH "$buf" generate --template "$here/buf.gen.yaml" -o "$out" \
  --path proto/satchel/v1/satchel.proto
