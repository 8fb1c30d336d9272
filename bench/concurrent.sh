#!/usr/bin/env bash
# 200 concurrent "SBOM of image X" calls from the Python client to one
# satcheld: latency (p50, p99, max), the registry requests they make, and
# the CPU time daemon and client spend on them.
#
# docker-registry 2.8 (tag schema, no auth) holds an image and a
# CycloneDX-ish SBOM attached to it by another satcheld, so the measured
# daemon starts cold. The registry sits behind bench/latency_proxy.py at
# each RTT asked for (0: no proxy, direct); the proxy counts the requests
# and connections (--log-requests), the registry's access log gives each
# request's object. bench/concurrent_pull.py fires the calls: one Client,
# a thread per call, `pull(image, artifact_type=...)` (the newest
# attachment of that type), all released at once. For each RTT:
#
#   1 call        a fresh satcheld (default settings, empty content store),
#                 one call, then one again at once: the scale
#   CALLS at once another fresh satcheld, CALLS calls at once, then CALLS
#                 again at once (tags and listings within the 3 s cache,
#                 manifest and blob in the content store)
#
#   bench/concurrent.sh [--calls N] [--rtt-ms MS[,MS...]]   (defaults: 200, 20,0)
set -euo pipefail
cd "$(dirname "$0")/.."
calls=200 rtts=20,0
while [ $# -gt 0 ]; do
  case "$1" in
    --calls) calls="$2"; shift 2 ;;
    --rtt-ms) rtts="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
bin="$PWD/target/release"
if [ ! -x "$bin/satcheld" ] || [ ! -x "$bin/satchel" ]; then cargo build --release --bins -q; fi
. bench/lib.sh concurrent

# The Python client: clients/python/.venv (its test.sh makes it) when it
# has it, else a venv here, from PyPI.
py=clients/python/.venv/bin/python
if ! "$py" -c 'import satchel' 2>/dev/null; then
  # From a copy: an install from the checkout would leave build/ in it.
  python3 -m venv "$work/venv"
  cp -r clients/python "$work/client-src"
  rm -rf "$work/client-src/.venv" "$work/client-src/build"
  "$work/venv/bin/pip" install --quiet --disable-pip-version-check "$work/client-src"
  py="$work/venv/bin/python"
fi

direct="127.0.0.1:$(free_port)"
mkdir -p "$work/dist" "$work/files"
# The access log (one line per request) goes to stdout.
REGISTRY_LOG_ACCESSLOG_DISABLED=false REGISTRY_HTTP_ADDR="$direct" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/dist" \
  docker-registry serve tests/fixtures/registry.yml >"$work/dist.access" 2>"$work/dist.log" &
pids+=($!)
for _ in $(seq 300); do curl -s -o /dev/null "http://$direct/v2/" && break; sleep 0.05; done

# A satcheld with a HOME of its own (an empty content store under it) and
# nothing else from the environment. Sets $daemon and $sock.
start_daemon() {
  sock="$work/$1.sock"
  mkdir -p "$work/home-$1"
  env -u XDG_CACHE_HOME -u SATCHELD_CONFIG -u SATCHELD_CACHE_DIR -u SATCHELD_DOCKER_CONFIG \
    HOME="$work/home-$1" "$bin/satcheld" --listen "unix://$sock" 2>>"$work/$1.log" &
  daemon=$!
  pids+=("$daemon")
  for _ in $(seq 200); do [ -S "$sock" ] && return; sleep 0.05; done
  echo "satcheld ($1) did not start: $(cat "$work/$1.log")" >&2; exit 1
}
# Stops it, and takes it off $pids (its number may be someone else's later).
stop_daemon() {
  kill "$daemon"; wait "$daemon" 2>/dev/null || true
  local p rest=()
  for p in "${pids[@]}"; do [ "$p" = "$daemon" ] || rest+=("$p"); done
  pids=("${rest[@]}")
}

mt=application/vnd.cyclonedx+json
echo "the application" >"$work/files/app.tar"
python3 - "$work/files/sbom.cdx.json" <<'PY'
import json, sys
components = [{"type": "library", "name": f"pkg-{i}", "version": f"1.{i}.0", "purl": f"pkg:generic/pkg-{i}@1.{i}.0"}
              for i in range(200)]
with open(sys.argv[1], "w") as f:
    json.dump({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": components}, f)
PY
start_daemon attacher
"$bin/satchel" --addr "unix://$sock" push -q --plain-http "$direct/bench/app:v1" "$work/files/app.tar" >/dev/null
"$bin/satchel" --addr "unix://$sock" attach -q --plain-http --artifact-type "$mt" "$direct/bench/app:v1" \
  "$work/files/sbom.cdx.json:$mt" >/dev/null
stop_daemon

for rtt in ${rtts//,/ }; do
  reg="$direct" proxy_log=() via="direct"
  if [ "$rtt" != 0 ]; then
    python3 bench/latency_proxy.py --upstream "$direct" --rtt-ms "$rtt" --log-requests "$work/requests.$rtt" \
      >"$work/proxy.$rtt" 2>&1 &
    pids+=($!)
    wait_file "$work/proxy.$rtt"
    reg="$(awk '/^ready/{print $2}' "$work/proxy.$rtt")"
    proxy_log=(--proxy-log "$work/requests.$rtt") via="latency proxy"
  fi
  echo "== docker-registry 2.8 (tag schema), $rtt ms round trip ($via): the newest SBOM of an image"
  echo "   through the Python client and one satcheld, latency in ms; registry requests per round"
  printf '%-34s%8s%8s%8s%10s%10s%7s%8s%8s\n' "" p50 p99 max requests "reg. log" conns daemon client
  for n in 1 "$calls"; do
    label="$n at once, " extra=(--breakdown)
    [ "$n" != 1 ] || label="1 call, " extra=()
    start_daemon "d$rtt-$n"
    rm -rf "$work/out"
    "$py" bench/concurrent_pull.py --addr "unix://$sock" --subject "$reg/bench/app:v1" --artifact-type "$mt" \
      --expect "$work/files/sbom.cdx.json" --out "$work/out" --calls "$n" --label "$label" \
      --daemon-pid "$daemon" --registry-log "$work/dist.access" "${proxy_log[@]}" "${extra[@]}"
    stop_daemon
  done
  echo "(requests: counted at the proxy; reg. log: the registry's access log; conns: new connections"
  echo " to the proxy; daemon, client: CPU ms that satcheld and the Python client spent on the round)"
done
