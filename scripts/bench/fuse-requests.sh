#!/usr/bin/env bash
# fuse-requests.sh CMD [ARGS...]: runs CMD and prints the FUSE requests it made, by opcode, most
# frequent first (the kernel's fuse:fuse_request_send tracepoint, kernel 6.x; run as root). Only
# requests sent on behalf of CMD and its children are counted, not other processes' (an
# asynchronous RELEASE may be missed). CMD's output goes to stderr.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
data=$(mktemp /tmp/fuse-requests.XXXXXX)
trap 'rm -f "$data"' EXIT
perf record -q -e fuse:fuse_request_send -o "$data" -- "$@" >&2
perf script -i "$data" 2>/dev/null | grep -o 'opcode [0-9]* ([A-Z_0-9]*)' |
  sort | uniq -c | sort -rn
