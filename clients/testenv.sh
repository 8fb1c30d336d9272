#!/usr/bin/env bash
# The live environment every generated client's tests run against: a real
# docker-registry (distribution 2.8, so referrers go through the tag schema)
# on an ephemeral loopback port and a real satcheld on a Unix socket, both
# with their state under DIR.
#
#   clients/testenv.sh up DIR    start both; print KEY=VALUE lines (also in
#                                DIR/env):
#                                  SATCHEL_ADDR=unix:///...sock
#                                  SATCHEL_REGISTRY=127.0.0.1:PORT
#                                  SATCHEL_REGISTRY_BLOBS=DIR/.../blobs
#                                (where the registry keeps blob files, for
#                                tests that corrupt one on purpose)
#                                  SATCHEL_SIGNED_SUBJECT=REG/signed/app@DIGEST
#                                  SATCHEL_SIGNED_SBOM=REG/signed/app@DIGEST
#                                  SATCHEL_SIGNING_KEY=DIR/cosign/cosign.pub
#                                  SATCHEL_OTHER_KEY=DIR/other/cosign.pub
#                                (an image with a CycloneDX SBOM attached
#                                that the real cosign signed with the first
#                                key; the second key signed nothing)
#   clients/testenv.sh down DIR  stop both and wait for them to exit
#
# satcheld is the newest of $SATCHELD, the workspace's target/debug and
# target/release builds, and PATH; the satchel CLI beside it pushes the
# signed fixture, and cosign 3 ($SATCHEL_COSIGN, else the Go bin directory,
# else PATH; bench/peers.sh builds it) signs it. Each client's test fixture calls `up`
# before its tests and `down` after them, so `pytest`, `npm test`, `go test`
# and `mvn test` work on their own.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 up|down DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

# Stops both processes: TERM, up to 10 s to exit, then KILL.
stop() {
  for name in satcheld registry; do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
}

alive() { kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

# wait_for NAME CHECK...: until CHECK succeeds while NAME's process lives.
wait_for() {
  local name=$1
  shift
  for _ in $(seq 300); do
    if ! alive "$name"; then
      echo "testenv: $name exited; its log:" >&2
      tail -20 "$dir/$name.log" >&2 || true
      return 1
    fi
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "testenv: $name did not come up within 30 s; logs in $dir" >&2
  return 1
}

registry_answers() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://$1/v2/"
}

# The signed fixture: an image, an SBOM attached to it, cosign's signature
# of the SBOM; prints its KEY=VALUE lines.
sign_fixture() {
  local satchel cosign gobin
  satchel="$(dirname "$satcheld")/satchel"
  gobin="$(go env GOBIN 2>/dev/null || true)"
  [ -n "$gobin" ] || gobin="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin"
  cosign=${SATCHEL_COSIGN:-}
  if [ -z "$cosign" ]; then
    if [ -x "$gobin/cosign" ]; then cosign=$gobin/cosign; else cosign=$(command -v cosign || true); fi
  fi
  if [ -z "$cosign" ]; then
    echo "testenv: cosign is missing: run 'eval \"\$(bench/peers.sh)\"' or set SATCHEL_COSIGN" >&2
    return 1
  fi
  local run=("${isolate[@]}" HOME="$dir/cosign-home" COSIGN_PASSWORD= COSIGN_YES=true)
  mkdir -p "$dir/cosign" "$dir/other" "$dir/cosign-home"
  (cd "$dir/cosign" && "${run[@]}" "$cosign" generate-key-pair >/dev/null 2>&1 \
    && "${run[@]}" "$cosign" signing-config create --out sc.json >/dev/null 2>&1)
  (cd "$dir/other" && "${run[@]}" "$cosign" generate-key-pair >/dev/null 2>&1)
  printf 'the signed image' >"$dir/cosign/image.txt"
  printf '{"bomFormat":"CycloneDX","specVersion":"1.6"}' >"$dir/cosign/sbom.cdx.json"
  local cli=("${isolate[@]}" "$satchel" --addr "unix://$socket")
  local image sbom
  image=$(cd "$dir/cosign" && "${cli[@]}" push --plain-http "$registry/signed/app:v1" image.txt | sed -n 's/^Digest: //p')
  sbom=$(cd "$dir/cosign" && "${cli[@]}" attach --plain-http --artifact-type application/vnd.cyclonedx+json \
    "$registry/signed/app@$image" sbom.cdx.json | sed -n 's/^Digest: //p')
  (cd "$dir/cosign" && "${run[@]}" "$cosign" sign --key cosign.key --signing-config sc.json \
    --allow-http-registry --allow-insecure-registry -y "$registry/signed/app@$sbom" >"$dir/cosign.log" 2>&1) || {
    echo "testenv: cosign sign failed:" >&2
    cat "$dir/cosign.log" >&2
    return 1
  }
  printf 'SATCHEL_SIGNED_SUBJECT=%s\nSATCHEL_SIGNED_SBOM=%s\nSATCHEL_SIGNING_KEY=%s\nSATCHEL_OTHER_KEY=%s\n' \
    "$registry/signed/app@$image" "$registry/signed/app@$sbom" "$dir/cosign/cosign.pub" "$dir/other/cosign.pub"
}

case "$cmd" in
up)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Whatever fails from here on, leave nothing running.
  trap 'stop' ERR INT TERM
  satcheld=""
  for c in ${SATCHELD:-} "$root/target/debug/satcheld" "$root/target/release/satcheld" "$(command -v satcheld || true)"; do
    if [ -x "$c" ] && { [ -z "$satcheld" ] || [ "$c" -nt "$satcheld" ]; }; then satcheld=$c; fi
  done
  if [ -z "$satcheld" ]; then
    echo "testenv: no satcheld; run 'cargo build --bins' at the workspace root or set SATCHELD" >&2
    exit 1
  fi
  command -v docker-registry >/dev/null || {
    echo "testenv: docker-registry is missing (apt-get install docker-registry)" >&2
    exit 1
  }
  # The daemon's own settings come from its flags alone, never from the
  # caller's shell (a token file or config there would change every call).
  isolate=(env -u SATCHELD_CONFIG -u SATCHELD_DOCKER_CONFIG -u SATCHELD_AUTH_TOKEN_FILE
    -u SATCHELD_LISTEN -u SATCHELD_CACHE_DIR -u SATCHELD_STATE_DIR NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost)

  # A free port: bind port 0, read it, let it go. Another process may take
  # it in between; then the registry exits and the next port is tried.
  started=false
  for _ in 1 2 3; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    registry=127.0.0.1:$port
    REGISTRY_HTTP_ADDR=$registry \
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$dir/registry \
      setsid docker-registry serve "$root/tests/fixtures/registry.yml" \
      >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    if wait_for registry registry_answers "$registry"; then
      started=true
      break
    fi
    stop
  done
  $started || exit 1

  socket=$dir/satcheld.sock
  # Watches poll twice a second, so the clients' watch tests are quick.
  printf 'watch_poll_secs = 0.5\n' >"$dir/satcheld.toml"
  "${isolate[@]}" DOCKER_CONFIG="$dir/docker" setsid "$satcheld" --listen "unix://$socket" \
    --docker-config "$dir/docker/config.json" --cache-dir "$dir/cache" --state-dir "$dir/state" \
    --config "$dir/satcheld.toml" \
    >"$dir/satcheld.log" 2>&1 </dev/null &
  echo $! >"$dir/satcheld.pid"
  wait_for satcheld test -S "$socket"
  sign_fixture >"$dir/signed.env"
  trap - ERR INT TERM

  printf 'SATCHEL_ADDR=unix://%s\nSATCHEL_REGISTRY=%s\nSATCHEL_REGISTRY_BLOBS=%s\n' \
    "$socket" "$registry" "$dir/registry/docker/registry/v2/blobs" | cat - "$dir/signed.env" | tee "$dir/env"
  ;;
down)
  stop
  ;;
*)
  echo "usage: $0 up|down DIR" >&2
  exit 2
  ;;
esac
