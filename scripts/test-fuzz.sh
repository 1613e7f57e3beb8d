#!/usr/bin/env bash
# The fuzzing and concurrency steps of CI (TESTING.md §6-7, docs/testing.md "Fuzzing"):
# 1. builds the cargo fuzz targets (installs cargo-fuzz when missing; stable toolchain with
#    RUSTC_BOOTSTRAP=1; no sanitizer: the engine forbids unsafe code, and libFuzzer still
#    catches panics, hangs and memory growth);
# 2. runs each target for FUZZ_SECONDS (20 by default) on its checked-in corpus; new inputs go
#    to a scratch folder, so the corpus in the repo only changes by hand (cargo fuzz cmin);
# 3. runs the loom models (RUSTFLAGS="--cfg loom", in a target folder of their own so the
#    ordinary build is not thrown away).
# A crash, a hang (-timeout) or memory past -rss_limit_mb fails the script; the input is kept
# under fuzz/artifacts/<target>/ and `cargo fuzz run <target> <file>` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
started=$(date +%s)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet
fi

# test.sh turns warnings into errors for the workspace; the fuzz crate is held to the same.
echo "== fuzz: build (cargo fuzz build -s none)"
(cd fuzz && cargo fuzz build -s none)
echo "   built after $(( $(date +%s) - started )) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in records image ops tar graphdriver snapshotter; do
  echo "== fuzz: $target for ${FUZZ_SECONDS} s on fuzz/corpus/$target"
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! (cd fuzz && cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -seed=1 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1); then
    tail -n 60 "$log"
    echo "fuzz target $target failed: the input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  # libFuzzer separates the run number from DONE with a tab.
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
  grep -E '^stat::number_of_executed_units' "$log" || true
done

echo "== loom models"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
  cargo test -p lcfs --release loom -- --nocapture 2>&1 | grep -E '^test |^test result: .* [1-9][0-9]* passed'
test "${PIPESTATUS[0]}" = 0
# The daemon's model (node-id reuse, fuse-mount/src/nodes.rs) under its own cfg: `--cfg loom`
# would change tokio and hyper, which the snapshotter links.
echo "== loom model of node-id reuse (lcfs-fuse)"
RUSTFLAGS="--cfg lcfs_loom" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom-fuse" \
  cargo test -p lcfs-fuse --release --lib loom -- --nocapture 2>&1 | grep -E '^test |^test result: .* [1-9][0-9]* passed'
test "${PIPESTATUS[0]}" = 0
echo "== fuzz and loom: $(( $(date +%s) - started )) s"
