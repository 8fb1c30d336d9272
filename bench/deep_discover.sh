#!/usr/bin/env bash
# A full-depth discover of about 1000 referrers on loopback: satchel beside
# the ORAS CLI 1.3.6 and regctl 0.11.7, interleaved in one run.
#
# bench/referrer_tree.py writes the tree straight over the registry's HTTP
# API: an image, 10 referrers on it, 10 on each of those, 9 on each of
# those (10 + 100 + 900 = 1010), and on docker-registry, which has no
# referrers API, the tag-schema index `sha256-<hex>` of every subject, as
# ORAS writes it. Then each tool shows the whole tree, N runs, the order
# rotating every run:
#
#   satchel (TTL 0)  `satchel discover --depth 16` (its maximum) through a
#                    satcheld with `registry_tag_cache_secs = 0`: every
#                    listing is fetched again on every call
#   satchel (repeat) the same through a default satcheld (listings kept
#                    3 s), right after an untimed call: the listings fetched
#                    in the last 3 s come from its cache
#   ORAS             `oras discover` (every level by default)
#   regctl           `regctl artifact tree` (every level)
#
# Both daemons stay up for the whole run and keep manifests by digest
# whatever the TTL. On docker-registry 2.8 (tag schema) and ferro-oci-server
# (referrers API), no auth, no added latency. Every output is checked to
# hold every referrer. Prints the median per tool in ms, tool/ORAS, the
# CPU time of the tool (the CLI, and satcheld for satchel) and of the
# registry process during the call (medians), and the registry requests
# of one call (counted once beforehand through latency_proxy.py
# --log-requests with no added latency).
#
#   bench/deep_discover.sh [--runs N] [--fanout A,B,C] [--registry dist|ferro|both]
#   (defaults: 5 runs, 10,10,9, both)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 fanout=10,10,9 which=both
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --fanout) fanout="$2"; shift 2 ;;
    --registry) which="$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
[ "$which" = ferro ] || command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)"; exit 1; }
[ "$which" = dist ] || command -v ferro-oci-server >/dev/null || { echo "needs ferro-oci-server (cargo install ferro-oci-server)"; exit 1; }
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)"; exit 1; }
oras="" regctl=""
eval "$(bench/peers.sh)"
bin="$PWD/target/release"
if [ ! -x "$bin/satcheld" ] || [ ! -x "$bin/satchel" ]; then cargo build --release --bins -q; fi
. bench/lib.sh deep-discover
wait_http() { for _ in $(seq 300); do curl -s -o /dev/null "http://$1/v2/" && return; sleep 0.05; done; echo "no registry at $1" >&2; exit 1; }

# A satcheld with a HOME of its own (its content store under it) and
# nothing else from the environment; $2... are its flags.
start_daemon() {
  local name="$1"; shift
  local sock="$work/$name.sock"
  mkdir -p "$work/home-$name"
  env -u XDG_CACHE_HOME -u SATCHELD_CONFIG -u SATCHELD_CACHE_DIR -u SATCHELD_DOCKER_CONFIG \
    HOME="$work/home-$name" "$bin/satcheld" --listen "unix://$sock" "$@" 2>>"$work/$name.log" &
  pids+=($!)
  dpid[$name]=$!
  for _ in $(seq 200); do [ -S "$sock" ] && return; sleep 0.05; done
  echo "satcheld ($name) did not start: $(cat "$work/$name.log")" >&2; exit 1
}
declare -A dpid
echo 'registry_tag_cache_secs = 0' >"$work/ttl0.toml"
start_daemon ttl0 --config "$work/ttl0.toml"
start_daemon cached
mkdir -p "$work/home-oras" "$work/home-regctl"

sat() { "$bin/satchel" --addr "unix://$work/$1.sock" discover -q --plain-http --depth 16 "$2"; }
satchel_ttl0() { sat ttl0 "$1"; }
satchel_cached() { sat cached "$1"; }
oras_discover() { HOME="$work/home-oras" "$oras" discover --plain-http "$1"; }
regctl_tree() { HOME="$work/home-regctl" "$regctl" artifact tree "$1" </dev/null; }
# The referrers a tool's output shows: tree branches (satchel, ORAS) or
# list items (regctl) naming a digest.
shown() { grep -cE '(── |^ *- )sha256:[0-9a-f]{64}' "$1" || true; }

ms() { echo $(($(date +%s%N) / 1000000)); }
clk="$(getconf CLK_TCK)"
# The CPU time process $1 has spent so far, in ms; with a second argument,
# that of its children it has waited for.
cpu_ms() {
  local f=14; [ -z "${2:-}" ] || f=16
  awk -v hz="$clk" -v f="$f" '{print int(($f + $(f + 1)) * 1000 / hz)}' "/proc/$1/stat"
}
# The CPU time of the tools this shell has run, and of both daemons.
tool_cpu() { echo $(($(cpu_ms $$ children) + $(cpu_ms "${dpid[ttl0]}") + $(cpu_ms "${dpid[cached]}"))); }
# $1: label, $2: registry address, $3: the registry's pid, then flags for
# referrer_tree.py.
measure() {
  local label="$1" reg="$2" regpid="$3" ref="$2/bench/deep:v1" total tools i k tool t0 c0 u0 n r
  read -r _ total < <(python3 bench/referrer_tree.py --registry "$reg" --repo bench/deep --fanout "$fanout" "${@:4}")
  [ -n "$total" ] || { echo "could not write the tree on $label" >&2; exit 1; }
  # Once, untimed, through a counting proxy with no added latency: every
  # tool sees the whole tree, and the registry requests of one call are
  # counted (this also warms the registry's own caches).
  local log="$work/requests.$label" counted
  python3 bench/latency_proxy.py --upstream "$reg" --rtt-ms 0 --log-requests "$log" >"$work/proxy.$label" 2>&1 &
  pids+=($!)
  wait_file "$work/proxy.$label"
  counted="$(awk '/^ready/{print $2}' "$work/proxy.$label")"
  for r in "$reg" "$counted"; do HOME="$work/home-regctl" "$regctl" registry set "$r" --tls disabled --skip-check; done
  for tool in satchel_ttl0 satchel_cached oras_discover regctl_tree; do
    [ "$tool" != satchel_cached ] || sat cached "$counted/bench/deep:v1" >/dev/null
    n="$(grep -vc '^connect' "$log" || true)"
    "$tool" "$counted/bench/deep:v1" >"$work/out" || { echo "$tool failed on $label" >&2; exit 1; }
    sleep 0.2
    echo $(($(grep -vc '^connect' "$log" || true) - n)) >"$work/n.$label.$tool"
    n="$(shown "$work/out")"
    [ "$n" = "$total" ] || { echo "$tool on $label showed $n referrers of $total" >&2; head -20 "$work/out" >&2; exit 1; }
  done
  # The runs, straight to the registry, the order rotating.
  tools=(satchel_ttl0 satchel_cached oras_discover regctl_tree)
  for i in $(seq "$runs"); do
    for k in 0 1 2 3; do
      tool="${tools[$(((i + k) % 4))]}"
      # The default daemon's untimed call, whose listings the timed one finds.
      [ "$tool" != satchel_cached ] || sat cached "$ref" >/dev/null
      c0=$(cpu_ms "$regpid") u0=$(tool_cpu) t0=$(ms)
      "$tool" "$ref" >"$work/out"
      echo $(($(ms) - t0)) >>"$work/t.$label.$tool"
      echo $(($(cpu_ms "$regpid") - c0)) >>"$work/c.$label.$tool"
      echo $(($(tool_cpu) - u0)) >>"$work/u.$label.$tool"
      n="$(shown "$work/out")"
      [ "$n" = "$total" ] || { echo "$tool on $label, run $i: $n referrers of $total" >&2; exit 1; }
    done
  done
  report "$label" "$total"
}

report() {
  python3 - "$work" "$1" "$2" "$runs" "$fanout" <<'PY'
import pathlib, statistics, sys
work, label, total, runs, fanout = sys.argv[1:6]
title = {"dist": "docker-registry 2.8 (tag schema)", "ferro": "ferro-oci-server 1.0 (referrers API)"}[label]
def med(tool, kind="t"):
    return statistics.median(float(x) for x in pathlib.Path(work, f"{kind}.{label}.{tool}").read_text().split())
rows = [("satchel, registry_tag_cache_secs = 0", "satchel_ttl0"),
        ("satchel, default daemon, a repeat", "satchel_cached"),
        ("ORAS CLI 1.3.6 discover", "oras_discover"),
        ("regctl 0.11.7 artifact tree", "regctl_tree")]
oras = med("oras_discover")
print(f"== {title}: {total} referrers ({fanout.replace(',', ' x ')}), full depth, "
      f"loopback, median of {runs} runs (ms)")
print(f"{'':40}{'ms':>8}{'/ORAS':>8}{'tool CPU':>10}{'registry CPU':>14}{'requests':>10}")
for name, tool in rows:
    m = med(tool)
    n = pathlib.Path(work, f"n.{label}.{tool}").read_text().strip()
    print(f"{name:40}{m:8.0f}{m / oras:8.2f}{med(tool, 'u'):10.0f}{med(tool, 'c'):14.0f}{n:>10}")
print("(CPU ms during the call, medians: tool = the CLI process, plus satcheld for satchel; registry = the")
print(" registry process. requests: of one call, counted at a proxy beforehand; a repeat finds only the")
print(" listings fetched in the last 3 s, so after a call that took longer, as through the proxy can, it")
print(" fetches most again)")
PY
}

if [ "$which" != ferro ]; then
  addr="127.0.0.1:$(free_port)"
  mkdir -p "$work/dist"
  REGISTRY_HTTP_ADDR="$addr" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/dist" \
    docker-registry serve tests/fixtures/registry.yml >"$work/dist.log" 2>&1 &
  pids+=($!)
  wait_http "$addr"
  measure dist "$addr" $! --tag-schema
fi
if [ "$which" != dist ]; then
  addr="127.0.0.1:$(free_port)"
  mkdir -p "$work/ferro"
  FERRO_OCI_LISTEN="$addr" FERRO_OCI_STORAGE_DIR="$work/ferro" ferro-oci-server >"$work/ferro.log" 2>&1 &
  pids+=($!)
  wait_http "$addr"
  measure ferro "$addr" $!
fi
