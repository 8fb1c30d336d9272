#!/usr/bin/env bash
# Push and pull one large file through satcheld (over its Unix socket) and,
# side by side in the same run against the same docker-registry on loopback:
#   - curl: sha256 of the file, POST, PUT with the body (`curl -T`); GET to a
#     file, then sha256 of it (a verified download);
#   - oras-py (PyPI `oras`), push and pull;
#   - skopeo copy from an OCI layout holding the file as a layer, and back.
# Prints median times, throughput ratios against curl, and satcheld's peak
# RSS after it has moved every byte of every round (push and pull).
#
#   bench/transfer.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
runs="${2:-3}"

command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
command -v skopeo >/dev/null || { echo "needs skopeo (apt-get install skopeo)"; exit 1; }
python3 -c 'import oras' 2>/dev/null || pip install -q oras==0.2.43
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
# No content cache: every pull goes to the registry, like the others'.
"$bin/satcheld" --listen "unix://$sock" --no-cache 2>"$work/satcheld.log" &
daemon=$!
export SATCHEL_ADDR="unix://$sock"
for _ in $(seq 200); do curl -sf "http://$reg/v2/" >/dev/null && [ -S "$sock" ] && break; sleep 0.05; done

file="$work/payload.bin"
hash() { openssl dgst -sha256 -r "$1" | cut -d' ' -f1; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# Every round moves new random bytes, so no tool (satcheld mounts blobs it
# has seen, skopeo remembers them) can skip the transfer.
layout="$work/layout"
new_payload() {
  rm -rf "$layout" "$file"
  head -c "$((size_mib << 20))" /dev/urandom > "$file"
  digest="sha256:$(hash "$file")"
  # An OCI layout with the file as its one layer, for skopeo.
  mkdir -p "$layout/blobs/sha256"
  ln "$file" "$layout/blobs/sha256/${digest#sha256:}"
  config='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["'"$digest"'"]}}'
  printf '%s' "$config" > "$work/config.json"
  cdigest="sha256:$(hash "$work/config.json")"
  cp "$work/config.json" "$layout/blobs/sha256/${cdigest#sha256:}"
  manifest='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"'"$cdigest"'","size":'"${#config}"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"'"$digest"'","size":'"$((size_mib << 20))"'}]}'
  printf '%s' "$manifest" > "$work/manifest.json"
  mdigest="sha256:$(hash "$work/manifest.json")"
  cp "$work/manifest.json" "$layout/blobs/sha256/${mdigest#sha256:}"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}' \
    "$mdigest" "${#manifest}" > "$layout/index.json"
}

curl_push() {
  local t0 loc; t0=$(now)
  local d="sha256:$(hash "$file")"
  loc=$(curl -sf -X POST -D - -o /dev/null "http://$reg/v2/$1/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$file" "$loc&digest=$d" -o /dev/null
  since "$t0"
}
curl_pull() {
  local t0; t0=$(now)
  curl -sf -o "$work/curl.out" "http://$reg/v2/$1/blobs/$digest"
  [ "sha256:$(hash "$work/curl.out")" = "$digest" ] || { echo "curl: digest mismatch" >&2; exit 1; }
  rm -f "$work/curl.out"
  since "$t0"
}
satchel_push() {
  local t0; t0=$(now)
  "$bin/satchel" push -q --plain-http "$reg/$1:v1" "$file" >/dev/null
  since "$t0"
}
satchel_pull() {
  local t0; rm -rf "$work/out"; t0=$(now)
  "$bin/satchel" pull -q --plain-http "$reg/$1:v1" -o "$work/out" >/dev/null
  since "$t0"
  cmp -s "$file" "$work/out/payload.bin" || { echo "satchel: bytes differ" >&2; exit 1; }
  rm -rf "$work/out"
}
oras_push() {
  local t0; t0=$(now)
  (cd "$work" && python3 - "$reg/$1:v1" <<'PY' >/dev/null 2>&1
import sys, oras.client
c = oras.client.OrasClient(insecure=True, auth_backend="basic")
c.push(files=["payload.bin"], target=sys.argv[1])
PY
  )
  since "$t0"
}
oras_pull() {
  local t0; rm -rf "$work/oras-out"; t0=$(now)
  python3 - "$reg/$1:v1" "$work/oras-out" <<'PY' >/dev/null 2>&1
import sys, oras.client
c = oras.client.OrasClient(insecure=True, auth_backend="basic")
c.pull(target=sys.argv[1], outdir=sys.argv[2])
PY
  since "$t0"
  rm -rf "$work/oras-out"
}
# skopeo remembers where it saw blobs (a blob-info cache: under $HOME, or
# /var/lib/containers/cache for root) and would mount instead of upload;
# every run starts without one.
skopeo_push() {
  local t0; rm -rf "$work/skopeo-home"; mkdir -p "$work/skopeo-home"
  [ "$(id -u)" -ne 0 ] || rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
  t0=$(now)
  HOME="$work/skopeo-home" skopeo copy -q --insecure-policy --preserve-digests --dest-tls-verify=false "oci:$layout:v1" "docker://$reg/$1:v1"
  since "$t0"
}
skopeo_pull() {
  local t0; rm -rf "$work/skopeo-out" "$work/skopeo-home"; mkdir -p "$work/skopeo-home"; t0=$(now)
  HOME="$work/skopeo-home" skopeo copy -q --insecure-policy --src-tls-verify=false "docker://$reg/$1:v1" "oci:$work/skopeo-out:v1"
  since "$t0"
  rm -rf "$work/skopeo-out"
}

declare -A t
for i in $(seq "$runs"); do
  new_payload
  for tool in curl satchel oras skopeo; do
    t[$tool-push]+="$("${tool}_push" "bench/$tool$i") "
    t[$tool-pull]+="$("${tool}_pull" "bench/$tool$i") "
  done
done
rss_kib=$(awk '/VmHWM/{print $2}' "/proc/$daemon/status")
moved_mib=$((2 * runs * size_mib))

python3 - "$size_mib" "$rss_kib" "$moved_mib" \
  "${t[curl-push]}" "${t[curl-pull]}" "${t[satchel-push]}" "${t[satchel-pull]}" \
  "${t[oras-push]}" "${t[oras-pull]}" "${t[skopeo-push]}" "${t[skopeo-pull]}" <<'PY'
import statistics, sys
size, rss, moved = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
vals = [[float(x) for x in a.split()] for a in sys.argv[4:]]
names = ["curl", "satchel", "oras-py", "skopeo"]
m = statistics.median
push = {n: m(vals[2 * i]) for i, n in enumerate(names)}
pull = {n: m(vals[2 * i + 1]) for i, n in enumerate(names)}
print(f"{size} MiB over loopback to docker-registry 2.8, median of {len(vals[0])} runs")
print(f"{'':10}{'push s':>9}{'push MiB/s':>12}{'vs curl':>9}   {'pull s':>8}{'pull MiB/s':>12}{'vs curl':>9}")
for n in names:
    print(f"{n:10}{push[n]:9.2f}{size / push[n]:12.0f}{push['curl'] / push[n]:8.2f}x   "
          f"{pull[n]:8.2f}{size / pull[n]:12.0f}{pull['curl'] / pull[n]:8.2f}x")
print(f"satcheld peak RSS: {rss / 1024:.1f} MiB after moving {moved} MiB through it")
PY
