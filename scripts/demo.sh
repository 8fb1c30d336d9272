#!/usr/bin/env bash
# Builds satcheld and satchel, starts the daemon, and runs the Satchel story
# on a local OCI image layout (no registry needed):
#   push an image, attach an SBOM, discover, resolve, pull.
# The daemon keeps serving afterwards until Ctrl-C; pass --once to stop it
# when the demo is done.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins
bin="$PWD/target/release"
work="$(mktemp -d -t satchel-demo.XXXXXX)"
sock="$work/satcheld.sock"
export SATCHEL_ADDR="unix://$sock"

# Its own state directory: the journal's is locked by the daemon using it,
# and a satcheld of yours may be running.
"$bin/satcheld" --listen "$SATCHEL_ADDR" --state-dir "$work/state" 2>"$work/satcheld.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
cd "$work"
printf '#!/bin/sh\necho building with hugo\n' > build.sh
cat > sbom.json <<'JSON'
{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"type":"application","name":"hugo","version":"0.120.0"}]}
JSON

layout="$work/layout"
say "$bin/satchel" push --oci-layout "$layout:latest" --artifact-type application/vnd.example.builder build.sh
say "$bin/satchel" attach --oci-layout --artifact-type application/vnd.cyclonedx+json "$layout:latest" sbom.json:application/vnd.cyclonedx+json
say "$bin/satchel" discover --oci-layout "$layout:latest"
say "$bin/satchel" resolve --oci-layout "$layout:latest"
sbom_digest="$("$bin/satchel" discover --oci-layout "$layout:latest" --format json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["referrers"][0]["digest"])')"
say "$bin/satchel" pull --oci-layout "$layout@$sbom_digest" -o out
say cmp sbom.json out/sbom.json && echo "out/sbom.json is byte-identical to what was attached"

if [ "${1:-}" = "--once" ]; then
  exit 0
fi
echo
echo "satcheld is serving on $SATCHEL_ADDR (log: $work/satcheld.log)."
echo "Try: SATCHEL_ADDR=$SATCHEL_ADDR $bin/satchel discover --oci-layout $layout:latest"
echo "Press Ctrl-C to stop."
wait $daemon
