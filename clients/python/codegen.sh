#!/usr/bin/env bash
# Regenerates the Python stubs from proto/ into OUTDIR (default: the
# committed src/satchel/v1), with the pinned grpcio-tools in ./.venv.
# scripts/codegen.sh --check runs it into a scratch directory and diffs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/src/satchel/v1}
# The generator's version is part of the output: keep it pinned.
tools_version=1.85.1
venv=$here/.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import grpc_tools, importlib.metadata as m, sys; sys.exit(m.version('grpcio-tools') != '$tools_version')" 2>/dev/null ||
  "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==$tools_version"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$root/proto" && "$venv/bin/python" -m grpc_tools.protoc -I . \
  --python_out="$scratch" --pyi_out="$scratch" --grpc_python_out="$scratch" \
  satchel/v1/satchel.proto)
mkdir -p "$out"
for f in satchel_pb2.py satchel_pb2.pyi satchel_pb2_grpc.py; do
  cp "$scratch/satchel/v1/$f" "$out/$f"
done
