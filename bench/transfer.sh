#!/usr/bin/env bash
# Moves one large file through satcheld (over its Unix socket) and, side by
# side in the same run against the same docker-registry 2.8 on loopback,
# through the ORAS CLI 1.3.6 and curl. Fresh random bytes every round, so
# nothing can be skipped or mounted. Rows:
#
#   push       satchel: a fresh satcheld, default settings. ORAS: `oras push`.
#              curl: sha256 of the file, POST, PUT with the body (`curl -T`).
#   cold pull  satchel: a fresh satcheld with the default (empty) content
#              store. ORAS: `oras pull` (it verifies the digest). curl: GET
#              to a file, then its sha256 (a verified download).
#   warm pull  the same again: satchel's blob is now in the content store;
#              ORAS and curl go to the registry again.
#   warm pull, --stream: the same pull once more, with the bytes over the
#              gRPC stream instead of the local file handoff.
#   --no-cache pull: satchel through a satcheld started with --no-cache.
#
# Prints medians, satchel/ORAS, and satcheld's peak RSS (VmHWM) over its
# life: the default daemon's push and pulls, and the --no-cache daemon's.
#
#   bench/transfer.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
runs="${2:-3}"

command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
eval "$(bench/peers.sh)"
cargo build --release --bins -q
bin="$PWD/target/release"
. bench/lib.sh transfer

port="$(free_port)"
reg="127.0.0.1:$port"
mkdir -p "$work/registry" "$work/files"
REGISTRY_HTTP_ADDR="$reg" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/registry" \
  docker-registry serve tests/fixtures/registry.yml >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.05; done

# satcheld with nothing from the environment but a HOME of its own: the
# default content store is $HOME/.cache/satchel/content. Sets $daemon.
start_daemon() {
  local name="$1"; shift
  local sock="$work/$name.sock"
  rm -f "$sock"
  env -u XDG_CACHE_HOME -u SATCHELD_CONFIG -u SATCHELD_CACHE_DIR -u SATCHELD_DOCKER_CONFIG \
    HOME="$work/home-$name" "$bin/satcheld" --listen "unix://$sock" "$@" 2>>"$work/$name.log" &
  daemon=$!
  pids+=("$daemon")
  for _ in $(seq 200); do [ -S "$sock" ] && return; sleep 0.05; done
  echo "satcheld ($name) did not start: $(cat "$work/$name.log")" >&2; exit 1
}
# Records the daemon's peak RSS, then stops it.
stop_daemon() {
  awk '/VmHWM/{print $2}' "/proc/$daemon/status" >>"$work/rss.$1"
  kill "$daemon"; wait "$daemon" 2>/dev/null || true
}
mkdir -p "$work/home-default" "$work/home-nocache"
start_daemon nocache --no-cache
nocache="$daemon"

file="$work/files/payload.bin"
hash() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

curl_push() {
  local t0 loc d; t0=$(now)
  d="sha256:$(hash "$file")"
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$reg/v2/$1/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$file" "${loc}digest=$d" -o /dev/null
  since "$t0"
}
curl_pull() {
  local t0; rm -f "$work/curl.out"; t0=$(now)
  curl -sf -o "$work/curl.out" "http://$reg/v2/$1/blobs/$digest"
  [ "sha256:$(hash "$work/curl.out")" = "$digest" ] || { echo "curl: digest mismatch" >&2; exit 1; }
  since "$t0"
  rm -f "$work/curl.out"
}
satchel_push() {
  local t0; t0=$(now)
  "$bin/satchel" --addr "unix://$work/default.sock" push -q --plain-http "$reg/$1:v1" "$file" >/dev/null
  since "$t0"
}
# $2: which daemon (default or nocache); $3: more flags.
satchel_pull() {
  local t0; rm -rf "$work/out"; t0=$(now)
  "$bin/satchel" --addr "unix://$work/$2.sock" pull -q --plain-http "$reg/$1:v1" -o "$work/out" ${3:-} >/dev/null
  since "$t0"
  cmp -s "$file" "$work/out/payload.bin" || { echo "satchel: bytes differ" >&2; exit 1; }
  rm -rf "$work/out"
}
oras_push() {
  local t0; t0=$(now)
  (cd "$work/files" && HOME="$work/home-oras" "$oras" push --plain-http "$reg/$1:v1" payload.bin >/dev/null)
  since "$t0"
}
oras_pull() {
  local t0; rm -rf "$work/oras-out"; t0=$(now)
  HOME="$work/home-oras" "$oras" pull --plain-http "$reg/$1:v1" -o "$work/oras-out" >/dev/null
  since "$t0"
  cmp -s "$file" "$work/oras-out/payload.bin" || { echo "oras: bytes differ" >&2; exit 1; }
  rm -rf "$work/oras-out"
}

declare -A t
for i in $(seq "$runs"); do
  head -c "$((size_mib << 20))" /dev/urandom >"$file"
  digest="sha256:$(hash "$file")"
  # Push: a fresh default daemon, stopped afterwards, its store wiped.
  rm -rf "$work/home-default"; mkdir -p "$work/home-default"
  start_daemon default
  t[satchel-push]+="$(satchel_push "bench/satchel$i") "
  stop_daemon default
  t[oras-push]+="$(oras_push "bench/oras$i") "
  t[curl-push]+="$(curl_push "bench/curl$i") "
  # Pulls: another fresh default daemon with an empty content store.
  rm -rf "$work/home-default"; mkdir -p "$work/home-default"
  start_daemon default
  t[satchel-cold]+="$(satchel_pull "bench/satchel$i" default) "
  t[oras-cold]+="$(oras_pull "bench/oras$i") "
  t[curl-cold]+="$(curl_pull "bench/curl$i") "
  t[satchel-warm]+="$(satchel_pull "bench/satchel$i" default) "
  t[oras-warm]+="$(oras_pull "bench/oras$i") "
  t[curl-warm]+="$(curl_pull "bench/curl$i") "
  t[satchel-stream]+="$(satchel_pull "bench/satchel$i" default --stream) "
  t[oras-stream]+="$(oras_pull "bench/oras$i") "
  t[curl-stream]+="$(curl_pull "bench/curl$i") "
  stop_daemon default
  t[satchel-nocache]+="$(satchel_pull "bench/satchel$i" nocache) "
  t[oras-nocache]+="$(oras_pull "bench/oras$i") "
  t[curl-nocache]+="$(curl_pull "bench/curl$i") "
done
daemon="$nocache"
stop_daemon nocache

python3 - "$size_mib" "$runs" "$(sort -n "$work/rss.default" | tail -1)" "$(cat "$work/rss.nocache")" \
  "${t[satchel-push]}" "${t[oras-push]}" "${t[curl-push]}" \
  "${t[satchel-cold]}" "${t[oras-cold]}" "${t[curl-cold]}" \
  "${t[satchel-warm]}" "${t[oras-warm]}" "${t[curl-warm]}" \
  "${t[satchel-stream]}" "${t[oras-stream]}" "${t[curl-stream]}" \
  "${t[satchel-nocache]}" "${t[oras-nocache]}" "${t[curl-nocache]}" <<'PY'
import statistics, sys
size, runs, rss_default, rss_nocache = (int(x) for x in sys.argv[1:5])
vals = [statistics.median(float(x) for x in a.split()) for a in sys.argv[5:]]
rows = ["push", "cold pull (fresh daemon, empty store)", "warm pull (blob in the store)",
        "warm pull, --stream (no handoff)", "pull, satcheld --no-cache"]
print(f"{size} MiB over loopback to docker-registry 2.8, median of {runs} runs (s)")
print(f"{'':40}{'satchel':>9}{'ORAS':>9}{'curl':>9}{'satchel/ORAS':>14}{'satchel MiB/s':>15}")
for i, name in enumerate(rows):
    s, o, c = vals[3 * i : 3 * i + 3]
    print(f"{name:40}{s:9.2f}{o:9.2f}{c:9.2f}{s / o:14.2f}{size / s:15.0f}")
print("(ORAS and curl have no content store: their warm and --no-cache rows are the same network pull again)")
print(f"satcheld peak RSS: {rss_default / 1024:.1f} MiB (default daemon, largest of its lives), "
      f"{rss_nocache / 1024:.1f} MiB (--no-cache daemon, after {runs} pulls)")
PY
