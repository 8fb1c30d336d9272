#!/usr/bin/env bash
# Installs what the tests need (Debian's docker-registry, skopeo and openssl,
# ferro-oci-server from crates.io, and each generated client's dependencies
# from npm, PyPI, the Go module proxy and Maven Central) and runs every check
# and test: rustfmt, clippy, buf lint and breaking, generated-code drift, unit
# tests, gRPC tests, the end-to-end tests against real registries, and every
# generated client's tests against a live satcheld and docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "==> installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The Debian package may start a registry of its own on :5000; the tests
# start their own on ephemeral ports and do not need it.

# ferro-oci-server: a registry with the referrers API, from crates.io.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v ferro-oci-server >/dev/null 2>&1; then
  echo "==> cargo install ferro-oci-server"
  cargo install --locked --quiet ferro-oci-server@1.0.0
fi

# The real ORAS CLI, crane (and regctl), built from their Go modules, for
# the parity tests (tests/tests/oras_parity.rs) and the benchmarks; helm,
# for the chart's tests (tests/tests/helm.rs).
echo "==> bench/peers.sh (the ORAS CLI, regctl, crane, helm and cosign from the Go module proxy)"
eval "$(bench/peers.sh)"
export SATCHEL_ORAS="$oras" SATCHEL_CRANE="$crane" SATCHEL_HELM="$helm"
export SATCHEL_COSIGN="$cosign" SATCHEL_COSIGN2="$cosign2"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
# buf lint, buf breaking, and stale generated stubs fail fast.
scripts/codegen.sh --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> scripts/shape.py (file and function sizes, gRPC share, module cycles)"; python3 scripts/shape.py --enforce-grpc-share
echo "==> cargo build (binaries the end-to-end tests run)"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked
# A short pass of every fuzz target (oci/fuzz) on its committed seed corpus;
# a crash fails the run. scripts/fuzz.sh installs cargo-fuzz if missing.
scripts/fuzz.sh 15

# Each generated client against a live satcheld and docker-registry.
for client in python typescript go java; do
  echo "==> clients/$client"
  "clients/$client/test.sh"
done
