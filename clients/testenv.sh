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
#   clients/testenv.sh down DIR  stop both and wait for them to exit
#
# satcheld is the newest of $SATCHELD, the workspace's target/debug and
# target/release builds, and PATH. Each client's test fixture calls `up`
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
  trap - ERR INT TERM

  printf 'SATCHEL_ADDR=unix://%s\nSATCHEL_REGISTRY=%s\nSATCHEL_REGISTRY_BLOBS=%s\n' \
    "$socket" "$registry" "$dir/registry/docker/registry/v2/blobs" | tee "$dir/env"
  ;;
down)
  stop
  ;;
*)
  echo "usage: $0 up|down DIR" >&2
  exit 2
  ;;
esac
