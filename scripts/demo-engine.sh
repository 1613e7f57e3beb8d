#!/usr/bin/env bash
# The engine demo (`make demo-engine`) on an embedded default: a sparse image file under target/, a real directory
# tree of this machine imported as a committed layer, 100 clones, and a remount with fsck.
# Options pass through to the demo (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --quiet -p lcfs --example demo
exec target/release/examples/demo "$@"
