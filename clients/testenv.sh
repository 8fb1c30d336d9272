#!/usr/bin/env bash
# The live environment every generated client's tests run against: a real
# docker-registry (distribution 2.8, so referrers go through the tag schema)
# on an ephemeral loopback port and a real satcheld on a Unix socket, both
# with their state under DIR.
#
#   clients/testenv.sh up DIR    start both; print SATCHEL_ADDR=... and
#                                SATCHEL_REGISTRY=... lines (also in DIR/env)
#   clients/testenv.sh down DIR  stop both
#
# satcheld is taken from $SATCHELD, else the workspace's target/debug or
# target/release, else PATH. Each client's test fixture calls `up` before its
# tests and `down` after them, so `pytest`, `npm test`, `go test` and
# `mvn test` work on their own.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 up|down DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

stop() {
  for name in satcheld registry; do
    if [ -f "$dir/$name.pid" ]; then
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
}

wait_for() { # what, then a command that succeeds once it is ready
  local what=$1
  shift
  for _ in $(seq 300); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "testenv: $what did not come up within 30 s; logs in $dir" >&2
  stop
  exit 1
}

case "$cmd" in
up)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  satcheld=${SATCHELD:-}
  if [ -z "$satcheld" ]; then
    for c in "$root/target/debug/satcheld" "$root/target/release/satcheld"; do
      if [ -x "$c" ]; then satcheld=$c; break; fi
    done
  fi
  satcheld=${satcheld:-$(command -v satcheld || true)}
  if [ -z "$satcheld" ]; then
    echo "testenv: no satcheld; run 'cargo build --bins' at the workspace root or set SATCHELD" >&2
    exit 1
  fi
  command -v docker-registry >/dev/null || {
    echo "testenv: docker-registry is missing (apt-get install docker-registry)" >&2
    exit 1
  }
  # A free port: bind port 0, read the port, let it go.
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  registry=127.0.0.1:$port
  REGISTRY_HTTP_ADDR=$registry \
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$dir/registry \
    setsid docker-registry serve "$root/tests/fixtures/registry.yml" \
    >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/registry.pid"
  wait_for docker-registry python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://$registry/v2/"

  socket=$dir/satcheld.sock
  DOCKER_CONFIG=$dir/docker setsid "$satcheld" --listen "unix://$socket" \
    --cache-dir "$dir/cache" >"$dir/satcheld.log" 2>&1 </dev/null &
  echo $! >"$dir/satcheld.pid"
  wait_for satcheld test -S "$socket"

  printf 'SATCHEL_ADDR=unix://%s\nSATCHEL_REGISTRY=%s\n' "$socket" "$registry" | tee "$dir/env"
  ;;
down)
  stop
  ;;
*)
  echo "usage: $0 up|down DIR" >&2
  exit 2
  ;;
esac
