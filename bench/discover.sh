#!/usr/bin/env bash
# Warm discover latency (p50 over 200 calls) through satcheld, next to a raw
# HTTP GET of the same listing, on docker-registry (tag-schema index) and
# ferro-oci-server (referrers API), in one run.
#
#   bench/discover.sh [CALLS]     (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-200}"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v docker-registry >/dev/null || { echo "needs docker-registry"; exit 1; }
command -v ferro-oci-server >/dev/null || { echo "needs ferro-oci-server (cargo install ferro-oci-server)"; exit 1; }
cargo build --release --bins -q
cargo build --release -q -p satchel-cli --example discover_latency
bin="$PWD/target/release"
work="$(mktemp -d -t satchel-discover.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dist="127.0.0.1:$(free_port)"
mkdir -p "$work/dist" "$work/ferro"
REGISTRY_HTTP_ADDR="$dist" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/dist" \
  docker-registry serve tests/fixtures/registry.yml >/dev/null 2>&1 &
ferro="127.0.0.1:$(free_port)"
FERRO_OCI_LISTEN="$ferro" FERRO_OCI_STORAGE_DIR="$work/ferro" ferro-oci-server >/dev/null 2>&1 &
sock="$work/satcheld.sock"
"$bin/satcheld" --listen "unix://$sock" 2>"$work/satcheld.log" &
export SATCHEL_ADDR="unix://$sock"
for _ in $(seq 200); do
  curl -sf "http://$dist/v2/" >/dev/null && curl -sf "http://$ferro/v2/" >/dev/null && [ -S "$sock" ] && break
  sleep 0.05
done

echo 'image' > "$work/image.txt"
for t in 1 2 3; do echo "{\"n\":$t}" > "$work/att$t.json"; done
for reg in "$dist" "$ferro"; do
  ref="$reg/bench/app:latest"
  "$bin/satchel" push --plain-http "$ref" "$work/image.txt" >/dev/null
  for t in 1 2 3; do
    "$bin/satchel" attach --plain-http --artifact-type "application/vnd.bench.t$t" "$ref" "$work/att$t.json" >/dev/null
  done
  digest="$("$bin/satchel" resolve --plain-http "$ref")"
  if [ "$reg" = "$dist" ]; then
    echo "== docker-registry 2.8 (tag schema: GET of the sha256-<hex> index)"
    path="/v2/bench/app/manifests/${digest/:/-}"
  else
    echo "== ferro-oci-server (referrers API: GET /v2/<repo>/referrers/<digest>)"
    path="/v2/bench/app/referrers/$digest"
  fi
  "$bin/examples/discover_latency" "$SATCHEL_ADDR" "$ref" "$reg" "$path" "$calls"
done
