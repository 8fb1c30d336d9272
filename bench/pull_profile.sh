#!/usr/bin/env bash
# Pull one large file from docker-registry on loopback, side by side in one
# run: satchel with a fresh daemon and an empty content store (cold), the
# same pull again (warm, the blob in the store), satchel against a
# `--no-cache` daemon, the ORAS CLI, and curl (GET to a file, then sha256).
# Prints the best of RUNS for each, in seconds. A quick look for one's own
# changes; bench/transfer.sh is the full throughput benchmark.
#
#   bench/pull_profile.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 3 runs)
#   BASE_BIN=DIR: also pulls with the satchel and satcheld in DIR (an
#     earlier build), in the same rounds, for a before/after.
#   SATCHEL_STRACE=1: also prints `strace -c -f` of a cold pull's daemon.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
runs="${2:-3}"
oras="${ORAS:-$HOME/go/bin/oras}"
[ -x "$oras" ] || { echo "needs the ORAS CLI at $oras (go install oras.land/oras/cmd/oras@v1.3.6)"; exit 1; }
cargo build --release --bins -q
bin="$PWD/target/release"
work="$(mktemp -d -t satchel-pull.XXXXXX)"
daemon=""
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
reg="127.0.0.1:$port"
mkdir -p "$work/registry"
REGISTRY_HTTP_ADDR="$reg" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/registry" \
  docker-registry serve tests/fixtures/registry.yml >/dev/null 2>&1 &
for _ in $(seq 200); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.05; done

sock="$work/satcheld.sock"
export SATCHEL_ADDR="unix://$sock"
start_daemon() {
  stop_daemon
  rm -rf "$work/cache"
  "$use/satcheld" --listen "unix://$sock" "$@" 2>>"$work/satcheld.log" &
  daemon=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.02; done
}
stop_daemon() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; daemon=""; fi
  rm -f "$sock"
}

file="$work/payload.bin"
head -c "$((size_mib << 20))" /dev/urandom > "$file"
digest="sha256:$(openssl dgst -sha256 -r "$file" | cut -d' ' -f1)"
(cd "$work" && "$oras" push --plain-http "$reg/bench/pull:v1" payload.bin >/dev/null)

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
satchel_pull() {
  local t0; rm -rf "$work/out"; t0=$(now)
  "$use/satchel" pull -q --plain-http "$reg/bench/pull:v1" -o "$work/out" >/dev/null
  since "$t0"
  cmp -s "$file" "$work/out/payload.bin" || { echo "satchel: bytes differ" >&2; exit 1; }
  rm -rf "$work/out"
}
oras_pull() {
  local t0; rm -rf "$work/oras-out"; t0=$(now)
  "$oras" pull --no-tty --plain-http "$reg/bench/pull:v1" -o "$work/oras-out" >/dev/null
  since "$t0"
  rm -rf "$work/oras-out"
}
curl_pull() {
  local t0; t0=$(now)
  curl -sf -o "$work/curl.out" "http://$reg/v2/bench/pull/blobs/$digest"
  [ "sha256:$(openssl dgst -sha256 -r "$work/curl.out" | cut -d' ' -f1)" = "$digest" ] || { echo "curl: digest mismatch" >&2; exit 1; }
  since "$t0"
  rm -f "$work/curl.out"
}

declare -A t
builds=(new)
[ -n "${BASE_BIN:-}" ] && builds+=(base)
for _ in $(seq "$runs"); do
  for b in "${builds[@]}"; do
    use="$bin"; [ "$b" = base ] && use="$BASE_BIN"
    start_daemon --cache-dir "$work/cache"
    t[$b-cold]+="$(satchel_pull) "
    t[$b-warm]+="$(satchel_pull) "
    start_daemon --no-cache
    t[$b-nocache]+="$(satchel_pull) "
  done
  t[oras]+="$(oras_pull) "
  t[curl]+="$(curl_pull) "
done
stop_daemon
use="$bin"

if [ -n "${SATCHEL_STRACE:-}" ]; then
  start_daemon --cache-dir "$work/cache"
  strace -c -f -p "$daemon" -o "$work/strace.txt" 2>/dev/null &
  tracer=$!
  sleep 0.5
  satchel_pull >/dev/null
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  stop_daemon
  echo "strace -c of the daemon during a cold pull:"; head -25 "$work/strace.txt"
fi

best() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | head -1; }
printf '%s MiB from docker-registry on loopback, best of %s (seconds)\n' "$size_mib" "$runs"
for b in "${builds[@]}"; do
  label="satchel"; [ "$b" = base ] && label="satchel ($BASE_BIN)"
  printf '  %-28s %s\n' \
    "$label cold (empty store)" "$(best "${t[$b-cold]}")" \
    "$label warm (in the store)" "$(best "${t[$b-warm]}")" \
    "$label --no-cache daemon" "$(best "${t[$b-nocache]}")"
done
printf '  %-28s %s\n' \
  "ORAS CLI $("$oras" version | awk '/Version/{print $2}')" "$(best "${t[oras]}")" \
  "curl + sha256" "$(best "${t[curl]}")"
