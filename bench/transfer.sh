#!/usr/bin/env bash
# Push and pull one large file through satcheld (over its Unix socket) and
# with curl straight to the same docker-registry on loopback, side by side
# in one run, and print the times, the ratios and satcheld's peak RSS.
#
#   bench/transfer.sh [SIZE_MIB] [RUNS]      (defaults: 200 MiB, 3 runs)
#
# curl's push is sha256 of the file, POST, then PUT with the body (the
# registry needs the digest up front); curl's pull is GET to a file, then
# sha256 of it (a verified download). Medians are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-200}"
runs="${2:-3}"

command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
cargo build --release --bins -q
bin="$PWD/target/release"
work="$(mktemp -d -t satchel-bench.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
reg="127.0.0.1:$port"
mkdir -p "$work/registry"
REGISTRY_HTTP_ADDR="$reg" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/registry" \
  docker-registry serve tests/fixtures/registry.yml >/dev/null 2>&1 &
sock="$work/satcheld.sock"
"$bin/satcheld" --listen "unix://$sock" 2>"$work/satcheld.log" &
daemon=$!
export SATCHEL_ADDR="unix://$sock"
for _ in $(seq 200); do curl -sf "http://$reg/v2/" >/dev/null && [ -S "$sock" ] && break; sleep 0.05; done

file="$work/payload.bin"
head -c "$((size_mib << 20))" /dev/urandom > "$file"
hash() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
now() { date +%s.%N; }

curl_push() {
  local repo="$1" t0 digest loc
  t0=$(now)
  digest="sha256:$(hash "$file")"
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$reg/v2/$repo/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$file" "$loc&digest=$digest" -o /dev/null
  echo "$(now) - $t0" | bc
}
curl_pull() {
  local repo="$1" digest="$2" t0 got
  t0=$(now)
  curl -sf -o "$work/curl.out" "http://$reg/v2/$repo/blobs/$digest"
  got="sha256:$(hash "$work/curl.out")"
  [ "$got" = "$digest" ] || { echo "curl pull digest mismatch" >&2; exit 1; }
  echo "$(now) - $t0" | bc
}
satchel_push() {
  local repo="$1" t0
  t0=$(now)
  "$bin/satchel" push --plain-http "$reg/$repo:v1" "$file" >/dev/null
  echo "$(now) - $t0" | bc
}
satchel_pull() {
  local repo="$1" t0
  rm -rf "$work/out"
  t0=$(now)
  "$bin/satchel" pull --plain-http "$reg/$repo:v1" -o "$work/out" >/dev/null
  echo "$(now) - $t0" | bc
}

digest="sha256:$(hash "$file")"
declare -a cp cl sp sl
for i in $(seq "$runs"); do
  cp+=("$(curl_push "bench/curl$i")")
  sp+=("$(satchel_push "bench/satchel$i")")
  cl+=("$(curl_pull "bench/curl$i" "$digest")")
  sl+=("$(satchel_pull "bench/satchel$i")")
done
cmp -s "$file" "$work/out/payload.bin" || { echo "satchel pull produced different bytes" >&2; exit 1; }
rss_kib=$(awk '/VmHWM/{print $2}' "/proc/$daemon/status")

python3 - "$size_mib" "$rss_kib" "${cp[*]}" "${sp[*]}" "${cl[*]}" "${sl[*]}" <<'PY'
import statistics, sys
size, rss = int(sys.argv[1]), int(sys.argv[2])
cp, sp, cl, sl = ([float(x) for x in a.split()] for a in sys.argv[3:7])
m = statistics.median
print(f"{size} MiB over loopback to docker-registry, median of {len(cp)} runs")
print(f"{'':8}{'curl':>10}{'satchel':>10}{'satchel/curl throughput':>26}")
for name, c, s in (("push", cp, sp), ("pull", cl, sl)):
    print(f"{name:8}{m(c):9.2f}s{m(s):9.2f}s{m(c)/m(s):25.2f}x")
print(f"satcheld peak RSS: {rss/1024:.1f} MiB")
PY
