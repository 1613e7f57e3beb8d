#!/usr/bin/env bash
# The page cache of N layers reading one shared file (issue 7's memory goal, without Docker):
# lcfs through its FUSE mount against kernel overlayfs, in one run.
#
# For each driver: an image holding one MEM_MB MiB file, N writable layers on it (lcfs: child
# layers of the committed image; overlay: N mounts with the image directory as lowerdir), caches
# dropped, then one `cat` of the file in every layer, all at once (READERS=parallel) or one after
# another (READERS=serial). Reported per driver, medians over REPEAT:
#   held     the page cache the readers hold (charged to a memory cgroup of their own: every
#            layer's file; for overlay that is its lower file, the one inode all its layers'
#            files are) plus, for lcfs, the image file's pages (fincore), which the daemon reads;
#            taken once it has not changed for 1 s (lcfs drops pages from a thread of its own),
#            at most 20 s after the reads;
#   cached   growth of Cached in /proc/meminfo (the whole machine's: other work counts too);
#   rss      the lcfs daemon's resident memory after the reads (0 for the kernel).
# Nothing opens the layers' files to look at them (that would be a use, and move pages).
# Writes OUT/results.md. Run as root; everything lives in one /tmp/lcfs-bench-pagecache.*
# directory, removed (and unmounted) on exit.
#
# Settings (environment): N=20 MEM_MB=256 REPEAT=3 READERS=parallel LCFS=path (else built)
#   OUT=target/bench-pagecache
set -eEuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${N:-20}
MEM_MB=${MEM_MB:-256}
REPEAT=${REPEAT:-3}
READERS=${READERS:-parallel}
OUT=${OUT:-$ROOT/target/bench-pagecache}
LCFS=${LCFS:-}

log() { printf 'pagecache: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (mounts, drop_caches)"
case $READERS in parallel | serial) ;; *) die "READERS is parallel or serial, not $READERS" ;; esac
command -v fincore > /dev/null || die "fincore (util-linux) is missing"
if [ -z "$LCFS" ]; then
  log "building lcfs (cargo build --release -p lcfs-fuse)"
  cargo build --release -q -p lcfs-fuse
  LCFS=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/lcfs
fi
[ -x "$LCFS" ] || die "no lcfs binary at $LCFS"

W=$(mktemp -d /tmp/lcfs-bench-pagecache.XXXXXX)
CG=
cleanup() {
  set +e
  [ -n "$CG" ] && rmdir "$CG" 2> /dev/null
  for m in "$W"/ov/m*; do mountpoint -q "$m" 2> /dev/null && umount "$m"; done
  mountpoint -q "$W/lcfs/mnt" 2> /dev/null && "$LCFS" umount "$W/lcfs/mnt"
  rm -rf "$W"
}
trap cleanup EXIT

# A memory cgroup for the readers: v1 (memory controller directory) or v2 (unified).
if [ -d /sys/fs/cgroup/memory ]; then
  CG=/sys/fs/cgroup/memory/lcfs-bench-pagecache.$$
  mkdir "$CG"
  cg_cache_bytes() { awk '$1 == "total_cache" { print $2 }' "$CG/memory.stat"; }
else
  CG=/sys/fs/cgroup/lcfs-bench-pagecache.$$
  mkdir "$CG"
  cg_cache_bytes() { awk '$1 == "file" { print $2 }' "$CG/memory.stat"; }
fi
# Reads file $1 from inside the readers' cgroup.
read_in_cg() { sh -c 'echo $$ > "$1/cgroup.procs" && exec cat "$2" > /dev/null' sh "$CG" "$1"; }
cached_kb() { awk '/^Cached:/ { print $2 }' /proc/meminfo; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Bytes of the given files in the page cache.
resident_bytes() { fincore --bytes --noheadings --output RES "$@" | awk '{ s += $1 } END { print s + 0 }'; }
daemon_rss_kb() {
  local pid
  pid=$(pgrep -f "lcfs mount .*$W/lcfs/mnt" | head -1 || true)
  [ -n "$pid" ] && awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" || echo 0
}

setup_overlay() {
  mkdir -p "$W/ov/lower"
  dd if=/dev/urandom of="$W/ov/lower/big" bs=1M count="$MEM_MB" status=none
  for ((i = 1; i <= N; i++)); do
    mkdir -p "$W/ov/u$i" "$W/ov/w$i" "$W/ov/m$i"
    mount -t overlay overlay -o "lowerdir=$W/ov/lower,upperdir=$W/ov/u$i,workdir=$W/ov/w$i" "$W/ov/m$i"
  done
}
overlay_files() {
  for ((i = 1; i <= N; i++)); do echo "$W/ov/m$i/big"; done
}
# The backing store outside the readers' cgroup: none for overlay (its pages are the readers').
overlay_backing() { :; }

setup_lcfs() {
  mkdir -p "$W/lcfs/mnt"
  "$LCFS" mkfs --size "$((MEM_MB * 4 + 1024))M" "$W/lcfs/img" > /dev/null
  "$LCFS" mount "$W/lcfs/img" "$W/lcfs/mnt"
  "$LCFS" layer create image --mount "$W/lcfs/mnt" > /dev/null
  dd if=/dev/urandom of="$W/lcfs/mnt/layers/image/big" bs=1M count="$MEM_MB" status=none
  "$LCFS" layer commit image --mount "$W/lcfs/mnt" > /dev/null
  for ((i = 1; i <= N; i++)); do
    "$LCFS" layer create "c$i" --parent image --mount "$W/lcfs/mnt" > /dev/null
  done
}
lcfs_files() {
  for ((i = 1; i <= N; i++)); do echo "$W/lcfs/mnt/layers/c$i/big"; done
}
lcfs_backing() { echo "$W/lcfs/img"; }

# The page cache the readers and the backing store of driver $1 hold now (bytes).
held_bytes() {
  local backing
  backing=$("$1_backing")
  echo $(($(cg_cache_bytes) + $([ -n "$backing" ] && resident_bytes "$backing" || echo 0)))
}

# One measurement of driver $1: prints "held_mib cached_mib rss_mib".
measure() {
  local driver=$1 c0 c1 held last rss i
  local -a paths
  mapfile -t paths < <("${driver}_files")
  drop_caches
  c0=$(cached_kb)
  if [ "$READERS" = parallel ]; then
    for ((i = 0; i < N; i++)); do read_in_cg "${paths[$i]}" & done
    wait
  else
    for ((i = 0; i < N; i++)); do read_in_cg "${paths[$i]}"; done
  fi
  held=$(held_bytes "$driver")
  for ((i = 0; i < 20; i++)); do
    sleep 1
    last=$held
    held=$(held_bytes "$driver")
    [ "$held" = "$last" ] && break
  done
  c1=$(cached_kb)
  rss=0
  [ "$driver" = lcfs ] && rss=$(daemon_rss_kb)
  awk -v h="$held" -v a="$c0" -v b="$c1" -v r="$rss" \
    'BEGIN { printf "%.1f %.1f %.1f\n", h / 1048576, (b - a) / 1024, r / 1024 }'
}

log "$N layers, one $MEM_MB MiB file, $READERS readers, $REPEAT repetitions; scratch $W"
log "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
setup_overlay
setup_lcfs
declare -A samples
for ((r = 1; r <= REPEAT; r++)); do
  for d in overlay lcfs; do
    s=$(measure "$d")
    log "repetition $r, $d: held/cached/rss MiB = $s"
    samples[$d]+="$s"$'\n'
  done
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mkdir -p "$OUT"
{
  echo "$N layers each read one $MEM_MB MiB file ($READERS readers), medians of $REPEAT; MiB;"
  echo "in parentheses the ratio to one copy of the file ($MEM_MB MiB). Load at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| driver | page cache held by the readers (+ lcfs's image file) | Cached growth | daemon RSS |"
  echo "| --- | ---: | ---: | ---: |"
  for d in overlay lcfs; do
    h=$(printf '%s' "${samples[$d]}" | awk '{ print $1 }' | median)
    c=$(printf '%s' "${samples[$d]}" | awk '{ print $2 }' | median)
    m=$(printf '%s' "${samples[$d]}" | awk '{ print $3 }' | median)
    awk -v d="$d" -v h="$h" -v c="$c" -v m="$m" -v one="$MEM_MB" \
      'BEGIN { printf "| %s | %.0f (%.2fx) | %.0f (%.2fx) | %.0f |\n", d, h, h / one, c, c / one, m }'
  done
} > "$OUT/results.md"
cat "$OUT/results.md"
