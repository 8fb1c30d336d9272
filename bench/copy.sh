#!/usr/bin/env bash
# `satchel cp -r` beside `oras cp -r`, side by side in one run: an artifact
# of one large file (fresh random bytes each round) with an SBOM on it and
# a signature on the SBOM, pushed by ORAS to one docker-registry 2.8 on
# loopback, copied
#
#   across    to a second docker-registry (every blob streams through the
#             copying process),
#   mount     to another repository of the same registry (blobs mounted,
#             nothing streams).
#
# Each round starts a fresh satcheld. Prints medians, satchel/ORAS, and the
# peak RSS of each copier: satcheld's VmHWM over its life (the satchel CLI
# moves no bytes) and the ORAS CLI's maximum resident set.
#
#   bench/copy.sh [SIZE_MIB] [RUNS]      (defaults: 512 MiB, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-512}"
runs="${2:-3}"

command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
eval "$(bench/peers.sh)"
cargo build --release --bins -q
bin="$PWD/target/release"
. bench/lib.sh copy

start_registry() {
  local port; port="$(free_port)"
  mkdir -p "$work/registry-$1"
  REGISTRY_HTTP_ADDR="127.0.0.1:$port" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/registry-$1" \
    docker-registry serve tests/fixtures/registry.yml >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
  echo "127.0.0.1:$port"
}
src="$(start_registry src)"
dst="$(start_registry dst)"

start_daemon() {
  local sock="$work/satcheld.sock"
  rm -f "$sock"
  env -u XDG_CACHE_HOME -u SATCHELD_CONFIG -u SATCHELD_CACHE_DIR -u SATCHELD_DOCKER_CONFIG \
    HOME="$work/home" "$bin/satcheld" --listen "unix://$sock" 2>>"$work/satcheld.log" &
  daemon=$!
  pids+=("$daemon")
  for _ in $(seq 200); do [ -S "$sock" ] && return; sleep 0.05; done
  echo "satcheld did not start: $(cat "$work/satcheld.log")" >&2; exit 1
}
stop_daemon() {
  awk '/VmHWM/{print $2}' "/proc/$daemon/status" >>"$work/rss.satchel"
  kill "$daemon"; wait "$daemon" 2>/dev/null || true
}

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
oras() { HOME="$work/home-oras" "$oras" "$@"; }
satchel() { "$bin/satchel" --addr "unix://$work/satcheld.sock" "$@"; }
# The referrer tree's digests, as ORAS sees it: what both copies must give.
tree() { oras discover --plain-http --format json "$1" | jq -c '[.. | .digest? // empty]'; }

mkdir -p "$work/files"
cd "$work/files"
echo '{"bomFormat":"CycloneDX"}' >sbom.json
echo signed >sig.txt
declare -A t
for i in $(seq "$runs"); do
  head -c "$((size_mib << 20))" /dev/urandom >payload.bin
  subject="$src/bench/app$i:v1"
  oras push --plain-http "$subject" payload.bin >/dev/null
  sbom=$(oras attach --plain-http --artifact-type application/vnd.cyclonedx+json --format go-template --template '{{.digest}}' "$subject" sbom.json)
  oras attach --plain-http --artifact-type application/example.sig "$src/bench/app$i@$sbom" sig.txt >/dev/null
  want="$(tree "$subject")"
  rm -rf "$work/home"; mkdir -p "$work/home"
  start_daemon
  for kind in across mount; do
    case $kind in
      across) to_s="$dst/bench/satchel$i:v1"; to_o="$dst/bench/oras$i:v1" ;;
      mount) to_s="$src/bench/satchel$i:v1"; to_o="$src/bench/oras$i:v1" ;;
    esac
    t0=$(now)
    satchel cp -q -r --from-plain-http --to-plain-http "$subject" "$to_s" >/dev/null
    t[satchel-$kind]+="$(since "$t0") "
    t0=$(now)
    /usr/bin/time -f %M -o "$work/oras.rss" "$oras" cp -r --from-plain-http --to-plain-http "$subject" "$to_o" >/dev/null
    t[oras-$kind]+="$(since "$t0") "
    cat "$work/oras.rss" >>"$work/rss.oras-$kind"
    [ "$(tree "$to_s")" = "$want" ] || { echo "satchel: the copied tree differs" >&2; exit 1; }
    [ "$(tree "$to_o")" = "$want" ] || { echo "oras: the copied tree differs" >&2; exit 1; }
  done
  stop_daemon
done

python3 - "$size_mib" "$runs" "$(sort -n "$work/rss.satchel" | tail -1)" \
  "$(sort -n "$work/rss.oras-across" | tail -1)" "$(sort -n "$work/rss.oras-mount" | tail -1)" \
  "${t[satchel-across]}" "${t[oras-across]}" "${t[satchel-mount]}" "${t[oras-mount]}" <<'PY'
import statistics, sys
size, runs, rss_s, rss_oa, rss_om = (int(x) for x in sys.argv[1:6])
med = [statistics.median(float(x) for x in a.split()) for a in sys.argv[6:]]
print(f"cp -r of a {size} MiB artifact with two levels of referrers, docker-registry 2.8 on loopback, median of {runs} runs (s)")
print(f"{'':44}{'satchel':>9}{'ORAS':>9}{'satchel/ORAS':>14}")
for name, (s, o) in [("to another registry (bytes stream)", med[0:2]),
                     ("to another repository (blobs mounted)", med[2:4])]:
    print(f"{name:44}{s:9.2f}{o:9.2f}{s / o:14.2f}")
print(f"peak RSS: satcheld {rss_s / 1024:.1f} MiB over both copies of a round; "
      f"ORAS CLI {rss_oa / 1024:.1f} MiB (across), {rss_om / 1024:.1f} MiB (mount)")
PY
