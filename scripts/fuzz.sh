#!/usr/bin/env bash
# Runs every cargo-fuzz target of satchel-oci (oci/fuzz/fuzz_targets) for a
# bounded time, one after the other, each on a scratch copy of its committed
# seed corpus (oci/fuzz/corpus/<target>, which is never grown here).
# Prints, per target, the inputs run and whether anything was found; exits
# non-zero if any target crashed (its input is left under
# oci/fuzz/artifacts/<target>/ and its panic is printed).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (default 60, all)
#
# Installs cargo-fuzz when missing. cargo-fuzz passes -Z flags to rustc;
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take them, so no nightly is
# needed. The targets are safe Rust over safe-Rust parsers, so they are
# built without AddressSanitizer (faster to build and to run), with debug
# assertions and overflow checks on.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
fuzz_dir=oci/fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in "$fuzz_dir"/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> cargo install cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir "$fuzz_dir" --sanitizer none)

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "==> cargo fuzz build (${targets[*]})"
build=()
[ "$#" -eq 1 ] && build=("$1") # else all targets, in one cargo run
if ! cargo fuzz build "${flags[@]}" "${build[@]}" >"$scratch/build.log" 2>&1; then
  grep -v '^ *Compiling ' "$scratch/build.log" | tail -n 40 >&2
  echo "fuzz: cargo fuzz build failed" >&2
  exit 1
fi
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  cp "$fuzz_dir/corpus/$t/"* "$scratch/$t/"
  log="$scratch/$t.log"
  status=0
  cargo fuzz run "${flags[@]}" "$t" "$scratch/$t" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  seeds="$(ls "$fuzz_dir/corpus/$t" | wc -l)"
  grown="$(ls "$scratch/$t" | wc -l)"
  if [ "$status" -eq 0 ]; then
    echo "fuzz $t: ${runs:-?} runs in ${secs}s, corpus $seeds -> $grown inputs, nothing found"
  else
    failed+=("$t")
    echo "fuzz $t: FOUND a crash after ${runs:-?} runs (exit $status):"
    { grep -A4 'panicked at' "$log" | head -n 10; grep 'Test unit written' "$log"; } | sed 's/^/    /'
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]}; inputs under $fuzz_dir/artifacts/" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, nothing found"
