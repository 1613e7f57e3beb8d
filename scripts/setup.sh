#!/usr/bin/env bash
# Installs what lcfs's build, demo and tests need on a fresh Debian machine (run as root),
# and nothing that is already there. Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# The snapshotter's gRPC code is generated from containerd's protos at build time.
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "setup: run as root (or install ${need_apt[*]} yourself)" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: no Rust toolchain found; install one with rustup (stable >= 1.85)" >&2
    exit 1
  fi
fi
