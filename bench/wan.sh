#!/usr/bin/env bash
# The everyday CI steps across a simulated WAN, satchel beside the ORAS CLI
# 1.3.6 and regctl 0.11.7, interleaved in one run:
#
#   attach   a fresh 20 KiB SBOM to an image tag
#   resolve  the image tag to a digest
#   discover the image's referrers as a tree (every level, as ORAS does by
#            default; satchel with --depth 16; regctl's `artifact tree`)
#   newest   pull the newest SBOM of the image (satchel: one `pull --subject
#            --artifact-type`; ORAS: `discover --format json` + `pull`;
#            regctl: `artifact get --subject --latest`)
#
# On docker-registry 2.8 with `auth: token` (the tests' TokenIssuer as a
# process, tests/examples/token_server.rs), and on ferro-oci-server (referrers
# API, no auth). A latency proxy (bench/latency_proxy.py) sits in front of
# each registry and of the token server, delaying every segment by half the
# RTT each way. Every tool logs in once beforehand; satcheld stays up for the
# whole run (that is its point), the CLIs start afresh for every step.
# Prints the median per tool and step, and satchel/ORAS.
#
#   bench/wan.sh [--runs N] [--rtt-ms MS] [--registry dist|ferro|both]
#   (defaults: 7 runs, 20 ms, both)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=7 rtt=20 which=both
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --rtt-ms) rtt="$2"; shift 2 ;;
    --registry) which="$2"; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
[ "$which" = ferro ] || command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
[ "$which" = dist ] || command -v ferro-oci-server >/dev/null || { echo "needs ferro-oci-server (cargo install ferro-oci-server)"; exit 1; }
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)"; exit 1; }
eval "$(bench/peers.sh)"
cargo build --release --bins -q
cargo build --release -q -p satchel-tests --example token_server
bin="$PWD/target/release"
. bench/lib.sh wan
# Starts a latency proxy in front of $1; sets $proxied to its address.
proxy() {
  python3 bench/latency_proxy.py --upstream "$1" --rtt-ms "$rtt" >"$work/proxy.$2" 2>&1 &
  pids+=($!)
  wait_file "$work/proxy.$2"
  proxied="$(awk '/^ready/{print $2}' "$work/proxy.$2")"
}
wait_http() { for _ in $(seq 300); do curl -s -o /dev/null "http://$1/v2/" && return; sleep 0.05; done; echo "no registry at $1" >&2; exit 1; }

user=bench-user
password="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mt=application/spdx+json

# Each tool keeps its configuration and credentials under its own HOME.
mkdir -p "$work/home-satchel" "$work/home-oras" "$work/home-regctl" "$work/files"
sock="$work/satcheld.sock"
HOME="$work/home-satchel" "$bin/satcheld" --listen "unix://$sock" 2>"$work/satcheld.log" &
pids+=($!)
export SATCHEL_ADDR="unix://$sock"
sat() { HOME="$work/home-satchel" "$bin/satchel" "$@"; }
ora() { (cd "$work/files" && HOME="$work/home-oras" "$oras" "$@"); }
rgc() { (cd "$work/files" && HOME="$work/home-regctl" "$regctl" "$@" </dev/null); }

start_dist() {
  "$bin/examples/token_server" "$work/issuer" "$user" <<<"$password" >"$work/issuer.json" &
  pids+=($!)
  wait_file "$work/issuer.json"
  local realm service issuer cert
  realm="$(jq -r .realm "$work/issuer.json")"
  service="$(jq -r .service "$work/issuer.json")"
  issuer="$(jq -r .issuer "$work/issuer.json")"
  cert="$(jq -r .cert "$work/issuer.json")"
  local token_addr="${realm#http://}"; token_addr="${token_addr%%/*}"
  proxy "$token_addr" token
  cp tests/fixtures/registry.yml "$work/registry.yml"
  printf 'auth:\n  token:\n    realm: http://%s/token\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n' \
    "$proxied" "$service" "$issuer" "$cert" >>"$work/registry.yml"
  local addr="127.0.0.1:$(free_port)"
  mkdir -p "$work/dist"
  REGISTRY_HTTP_ADDR="$addr" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/dist" \
    docker-registry serve "$work/registry.yml" >"$work/dist.log" 2>&1 &
  pids+=($!)
  wait_http "$addr"
  proxy "$addr" dist
  reg="$proxied"
}
start_ferro() {
  local addr="127.0.0.1:$(free_port)"
  mkdir -p "$work/ferro"
  FERRO_OCI_LISTEN="$addr" FERRO_OCI_STORAGE_DIR="$work/ferro" ferro-oci-server >"$work/ferro.log" 2>&1 &
  pids+=($!)
  wait_http "$addr"
  proxy "$addr" ferro
  reg="$proxied"
}

login() {
  sat login -q --plain-http -u "$user" --password-stdin "$reg" <<<"$password" >/dev/null
  ora login --plain-http -u "$user" --password-stdin "$reg" <<<"$password" >/dev/null
  rgc registry set "$reg" --tls disabled --skip-check
  HOME="$work/home-regctl" "$regctl" registry login "$reg" -u "$user" --pass-stdin <<<"$password" >/dev/null 2>&1
}

# One image per tool, pushed untimed, so each tool's referrers are its own.
setup_images() {
  echo "image for bench" >"$work/files/image.txt"
  local t
  for t in satchel oras regctl; do
    sat push -q --plain-http "$reg/bench/$t:v1" "$work/files/image.txt" >/dev/null
  done
}

# Step implementations: $1 is the image reference.
satchel_attach() { sat attach -q --plain-http --artifact-type "$mt" "$1" "$sbom:$mt" >/dev/null; }
oras_attach() { ora attach --plain-http --artifact-type "$mt" "$1" "$(basename "$sbom"):$mt" >/dev/null; }
regctl_attach() {
  rgc artifact put --subject "$1" --artifact-type "$mt" -m "$mt" -f "$(basename "$sbom")" --file-title \
    --annotation "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" >/dev/null
}
satchel_resolve() { sat resolve --plain-http "$1" >/dev/null; }
oras_resolve() { ora resolve --plain-http "$1" >/dev/null; }
regctl_resolve() { rgc image digest "$1" >/dev/null; }
satchel_discover() { sat discover -q --plain-http --depth 16 "$1" >/dev/null; }
oras_discover() { ora discover --plain-http "$1" >/dev/null; }
regctl_discover() { rgc artifact tree "$1" >/dev/null; }
satchel_newest() { sat pull -q --plain-http --subject "$1" --artifact-type "$mt" -o "$out" >/dev/null; }
oras_newest() {
  local d
  d="$(ora discover --plain-http --depth 1 --artifact-type "$mt" --format json "$1" |
    jq -r '.referrers | sort_by(.annotations["org.opencontainers.image.created"]) | last | .digest')"
  ora pull --plain-http "${1%:*}@$d" -o "$out" >/dev/null
}
regctl_newest() { rgc artifact get --subject "$1" --filter-artifact-type "$mt" --latest -o "$out" >/dev/null; }

ms() { echo $(($(date +%s%N) / 1000000)); }
# Runs every step $runs times on $reg, the tools interleaved (the order
# rotates every run); appends milliseconds to $work/t.<label>.<tool>.<step>.
measure() {
  local label="$1" tools=(satchel oras regctl) i s k tool t0
  for i in $(seq "$runs"); do
    for s in attach resolve discover newest; do
      for k in 0 1 2; do
        tool="${tools[$(((i + k) % 3))]}"
        local ref="$reg/bench/$tool:v1"
        sbom="$work/files/sbom-$tool.spdx.json"
        out="$work/out-$tool"
        rm -rf "$out"; mkdir -p "$out"
        [ "$s" != attach ] || head -c 15360 /dev/urandom | base64 -w0 >"$sbom"
        t0=$(ms)
        "${tool}_$s" "$ref" || { echo "$tool $s failed on $label" >&2; exit 1; }
        echo $(($(ms) - t0)) >>"$work/t.$label.$tool.$s"
        if [ "$s" = newest ]; then
          cmp -s "$sbom" "$out/$(basename "$sbom")" || { echo "$tool newest on $label: not the SBOM it attached last" >&2; exit 1; }
        fi
      done
    done
    # satchel and ORAS date attachments to the second; a tie would leave
    # "newest" undefined. Untimed.
    sleep 1
  done
}

report() {
  python3 - "$work" "$1" "$2" "$runs" "$rtt" <<'PY'
import statistics, sys, pathlib
work, label, title, runs, rtt = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
def med(tool, step):
    p = pathlib.Path(work, f"t.{label}.{tool}.{step}")
    return statistics.median(float(x) for x in p.read_text().split())
names = {"attach": "attach a 20 KiB SBOM", "resolve": "resolve a tag",
         "discover": "discover (tree)", "newest": "pull the newest SBOM of an image"}
print(f"== {title}, {rtt} ms round trip, median of {runs} runs (ms)")
print(f"{'step':34}{'satchel':>9}{'ORAS':>9}{'regctl':>9}{'satchel/ORAS':>14}")
for step, name in names.items():
    s, o, r = med("satchel", step), med("oras", step), med("regctl", step)
    print(f"{name:34}{s:9.0f}{o:9.0f}{r:9.0f}{s / o:14.2f}")
PY
}

if [ "$which" != ferro ]; then
  start_dist
  login
  setup_images
  measure dist
  report dist "docker-registry 2.8, auth: token"
fi
if [ "$which" != dist ]; then
  start_ferro
  rgc registry set "$reg" --tls disabled --skip-check
  setup_images
  measure ferro
  report ferro "ferro-oci-server 1.0 (referrers API, no auth)"
fi
