#!/usr/bin/env bash
# The main job (`make demo`), on an embedded default: a private containerd 2 and Docker 28 whose
# storage is lcfs on a sparse image file (no spare disk needed), running containers (import,
# run, diff, commit, a 5-step build, push and pull through a local registry, 50 create/remove
# cycles, the lcfs daemon killed with -9 and recovered), then teardown of everything it started.
# It is the containerd route of the end-to-end scripts (scripts/e2e/run.sh --help for options:
# E2E_ROUTES="containerd plugin" adds Docker 20.10 with the graph-driver plugin).
# `make demo-engine` is the engine alone: an import, 100 clones, a remount and fsck.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export E2E_ROUTES="${E2E_ROUTES:-containerd}"
exec bash scripts/e2e/run.sh "$@"
