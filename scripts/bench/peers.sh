#!/usr/bin/env bash
# make bench-peers (issue 7, item 2): the same file-level workloads on lcfs and on its peers,
# side by side, in one run, peers interleaved round-robin within each repetition.
#
# Run as root. Installs what is missing, builds lcfs (unless LCFS= names a binary), makes ONE
# loop-mounted ext4 scratch file system under /tmp holding every backing store, measures, writes
# target/bench-peers/{results.md,samples.csv,chart.png} and removes everything it made on exit
# (also on failure or Ctrl-C). Apart from the packages it installs and the build, it writes only
# in its own /tmp/lcfs-bench-peers.* directory and in OUT, and undoes only the mounts, loop
# devices and daemons it started itself. About 21 minutes with REPEAT=5 on a 2-core machine
# (the first run also makes the rootfs tarball with debootstrap, about 2 minutes).
#
# Peers: overlay (kernel overlayfs: lowerdir = the image directory, upperdir/workdir per layer),
# fuse-overlayfs (the same layout through FUSE), btrfs (a subvolume per layer on a loop device,
# `btrfs subvolume snapshot` to clone), vfs (`cp -a` per layer), lcfs (its FUSE mount, image file
# on the scratch fs, `lcfs layer create --parent` to clone).
#
# Workloads (a "layer" is always a writable child of the committed image, as 100 containers on
# one image in the original's benchmark, except for the untar, which goes into a new empty layer):
#   layers-create/remove  create LAYERS layers, then remove them (two timings)
#   untar                 `tar -xf` of a real root file system tarball into a new empty layer
#   append                append a line to every file of the image, in a child layer (copy-up)
#   small-*               create, stat, unlink SMALL_FILES 1 KiB files in a child layer
#   read1/read2           read every image file twice in a child layer; read2 is the warm pass
#
# Settings (environment):
#   REPEAT=5              repetitions (each runs every workload on every peer)
#   PEERS="overlay fuse-overlayfs btrfs vfs lcfs"   which peers, overlay is the ratio base
#   WORKLOADS="layers untar append small read"      which workloads
#   LAYERS=100 IMAGE_FILES=1238 SMALL_FILES=10000
#   LCFS=path             an lcfs binary to use instead of building one
#   ROOTFS=minbase        the tarball: minbase (debootstrap --variant=minbase of this machine's
#                         Debian suite, from the archive in its apt sources; cached in
#                         target/bench-peers/cache/) or pystdlib (tar of this machine's Python
#                         standard library, the offline fallback); ROOTFS_TAR=file uses a given one
#   SCRATCH_SIZE=12G      the sparse scratch file; LCFS_SIZE=8G and BTRFS_SIZE=4G inside it
#   OUT=target/bench-peers
set -eEuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/scripts/bench

REPEAT=${REPEAT:-5}
PEERS=${PEERS:-"overlay fuse-overlayfs btrfs vfs lcfs"}
WORKLOADS=${WORKLOADS:-"layers untar append small read"}
LAYERS=${LAYERS:-100}
IMAGE_FILES=${IMAGE_FILES:-1238}
SMALL_FILES=${SMALL_FILES:-10000}
ROOTFS=${ROOTFS:-minbase}
ROOTFS_ASKED=$ROOTFS
ROOTFS_TAR=${ROOTFS_TAR:-}
SCRATCH_SIZE=${SCRATCH_SIZE:-12G}
LCFS_SIZE=${LCFS_SIZE:-8G}
BTRFS_SIZE=${BTRFS_SIZE:-4G}
OUT=${OUT:-$ROOT/target/bench-peers}
LCFS=${LCFS:-}
LCFS_ENV=$LCFS
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}

say() { echo "bench-peers: $*"; }
die() { echo "bench-peers: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (mounts, loop devices, FUSE)"
case " $PEERS " in *" overlay "*) ;; *) say "overlay is not in PEERS: no ratios" ;; esac

# --- what is missing ----------------------------------------------------------------------------
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
need=()
command -v fuse-overlayfs >/dev/null 2>&1 || need+=(fuse-overlayfs)
command -v mkfs.btrfs >/dev/null 2>&1 || need+=(btrfs-progs)
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
"$PY" -c 'import matplotlib' >/dev/null 2>&1 || need+=(python3-matplotlib)
if [ -z "$ROOTFS_TAR" ] && [ "$ROOTFS" = minbase ] && [ ! -s "$OUT/cache/rootfs-minbase.tar" ]; then
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } ||
    say "could not install all of ${need[*]}; going on with what is there"
  [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
fi
for p in $PEERS; do
  case $p in
    overlay) grep -qw overlay /proc/filesystems || modprobe overlay || die "no overlay file system" ;;
    fuse-overlayfs) command -v fuse-overlayfs >/dev/null || die "no fuse-overlayfs" ;;
    btrfs) command -v mkfs.btrfs >/dev/null || die "no btrfs-progs"
           grep -qw btrfs /proc/filesystems || modprobe btrfs || die "no btrfs in this kernel" ;;
    vfs) ;;
    lcfs) [ -e /dev/fuse ] || die "no /dev/fuse" ;;
    *) die "unknown peer $p (overlay fuse-overlayfs btrfs vfs lcfs)" ;;
  esac
done

# --- lcfs -----------------------------------------------------------------------------------------
if [[ " $PEERS " == *" lcfs "* ]]; then
  if [ -z "$LCFS" ]; then
    # shellcheck source=/dev/null
    source "$ROOT/scripts/setup.sh"
    say "building lcfs (cargo build --release -p lcfs-fuse)"
    cargo build --release --quiet -p lcfs-fuse
    LCFS=${CARGO_TARGET_DIR:-$ROOT/target}/release/lcfs
  fi
  [ -x "$LCFS" ] || die "no lcfs binary at $LCFS"
fi

# --- the scratch file system and cleanup ---------------------------------------------------------
mkdir -p "$OUT"
W=$(mktemp -d /tmp/lcfs-bench-peers.XXXXXX)
S=$W/s
BACKING=$W/scratch.img
SCRATCH_LOOP=""
BTRFS_LOOP=""
BTRFS_IMG=$S/btrfs.img
B=$S/btrfs-mnt
M=$S/lcfs-mnt
LCFS_IMG=$S/lcfs.img
LCFS_MOUNTED=0
LCFS_LOG=""

ours_loop() { # $1 = device, $2 = backing file: true if the loop device still serves our file
  [ -n "$1" ] && [ "$(losetup -nO BACK-FILE "$1" 2>/dev/null | sed 's/ *$//')" = "$2" ]
}

save_lcfs_log() {
  if [ -n "$LCFS_LOG" ] && [ -f "$LCFS_LOG" ]; then cp "$LCFS_LOG" "$OUT/lcfs-daemon.log" || true; fi
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM ERR
  if [ "$rc" != 0 ] && [ -n "$LCFS_LOG" ] && [ -f "$LCFS_LOG" ]; then
    echo "bench-peers: failed (status $rc); the lcfs daemon log $LCFS_LOG ends with:" >&2
    tail -n 40 "$LCFS_LOG" >&2
  fi
  save_lcfs_log
  if [ "$LCFS_MOUNTED" = 1 ] && grep -q " $M fuse" /proc/mounts; then
    timeout 120 "$LCFS" umount "$M" || timeout 60 "$LCFS" umount --lazy "$M" ||
      echo "bench-peers: lcfs umount $M failed" >&2
    save_lcfs_log
  fi
  # every mount below the scratch mount (overlay and fuse-overlayfs layers, btrfs, leftovers of
  # debootstrap), deepest first, then the btrfs loop device, then the scratch itself
  awk -v s="$S/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || echo "bench-peers: could not unmount $m" >&2
  done
  if ours_loop "$BTRFS_LOOP" "$BTRFS_IMG"; then losetup -d "$BTRFS_LOOP"; fi
  if grep -q " $S " /proc/mounts; then umount "$S" || umount -l "$S"; fi
  if ours_loop "$SCRATCH_LOOP" "$BACKING"; then losetup -d "$SCRATCH_LOOP"; fi
  if ! grep -q " $W/" /proc/mounts; then rm -rf "$W"; else echo "bench-peers: left $W (still mounted)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'echo "bench-peers: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

load() { cut -d' ' -f1-3 /proc/loadavg; }
MACHINE="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), nproc $(nproc), \
$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo), kernel $(uname -r)"
LOAD_START=$(load)
say "machine: $MACHINE"
say "load average at start: $LOAD_START"

truncate -s "$SCRATCH_SIZE" "$BACKING"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$BACKING"
SCRATCH_LOOP=$(losetup --find --show "$BACKING")
mkdir -p "$S"
mount "$SCRATCH_LOOP" "$S"
say "scratch: $SCRATCH_SIZE ext4 on $SCRATCH_LOOP ($BACKING), mounted on $S"

settle() { # untimed, before each measurement: write back what earlier steps left dirty
  # (a transaction commit first wakes btrfs's cleaner, which reclaims deleted subvolumes)
  if [ -n "$BTRFS_LOOP" ]; then sync -f "$B"; btrfs subvolume sync "$B" >/dev/null; sync -f "$B"; fi
  sync -f "$S"
  sync -d "$BACKING"
}

# --- the root file system tarball and the image --------------------------------------------------
make_rootfs() {
  local cache=$OUT/cache/rootfs-$ROOTFS.tar
  mkdir -p "$OUT/cache"
  if [ -s "$cache" ]; then ROOTFS_SRC=$cache; return; fi
  case $ROOTFS in
    minbase)
      local uri suite
      uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
      [ -n "$uri" ] || uri=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
      # shellcheck disable=SC1091
      suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
      if [ -n "$uri" ] && [ -n "$suite" ] && command -v debootstrap >/dev/null; then
        say "debootstrap --variant=minbase $suite from $uri (about 2 minutes, once; cached)"
        if timeout 1200 debootstrap --variant=minbase "$suite" "$S/minbase" "$uri" >"$OUT/cache/debootstrap.log" 2>&1; then
          awk -v s="$S/minbase/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount
          tar -C "$S/minbase" --numeric-owner -cf "$cache.tmp" .
          mv "$cache.tmp" "$cache"
          rm -rf "$S/minbase"
          ROOTFS_SRC=$cache
          return
        fi
        say "debootstrap failed (see $OUT/cache/debootstrap.log); using the Python standard library"
        awk -v s="$S/minbase/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount
        rm -rf "$S/minbase"
      else
        say "no Debian archive or debootstrap; using the Python standard library"
      fi
      ROOTFS=pystdlib
      make_rootfs
      ;;
    pystdlib)
      local lib
      lib=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
      tar -C / -cf "$cache.tmp" "${lib#/}"
      mv "$cache.tmp" "$cache"
      ROOTFS_SRC=$cache
      ;;
    *) die "unknown ROOTFS=$ROOTFS (minbase or pystdlib)" ;;
  esac
}
if [ -n "$ROOTFS_TAR" ]; then ROOTFS_SRC=$ROOTFS_TAR; ROOTFS=given; else make_rootfs; fi
cp "$ROOTFS_SRC" "$S/rootfs.tar"
ROOTFS_DESC="$ROOTFS ($(basename "$ROOTFS_SRC")): $(du -m --apparent-size "$S/rootfs.tar" | cut -f1) MiB, \
$(tar -tf "$S/rootfs.tar" | wc -l) entries, $(tar -tvf "$S/rootfs.tar" | grep -c '^-') regular files"
say "rootfs tarball: $ROOTFS_DESC"

# The image: IMAGE_FILES regular files of the rootfs, evenly spaced in sorted path order, with
# every directory above them (hard links dereferenced, so every file is its own inode).
mkdir "$S/stage"
tar -C "$S/stage" -xf "$S/rootfs.tar"
PICKED=$("$PY" "$HERE/fsops.py" pick "$S/stage" "$IMAGE_FILES" "$S/image.list" "$S/image.tarlist")
tar -C "$S/stage" --no-recursion --hard-dereference -T "$S/image.tarlist" -cf "$S/image.tar"
rm -rf "$S/stage"
IMAGE_DESC="$PICKED, taken from the rootfs tarball (hard links dereferenced)"
say "image: $IMAGE_DESC"

# --- the peers: setup, and a layer's create and remove ------------------------------------------
setup_peer() {
  local p=$1
  case $p in
    overlay|fuse-overlayfs)
      mkdir -p "$S/$p/image" "$S/$p/empty" "$S/$p/layers"
      tar -C "$S/$p/image" -xf "$S/image.tar" ;;
    btrfs)
      truncate -s "$BTRFS_SIZE" "$BTRFS_IMG"
      BTRFS_LOOP=$(losetup --find --show "$BTRFS_IMG")
      mkfs.btrfs -q -f "$BTRFS_LOOP" >/dev/null
      mkdir -p "$B"
      mount "$BTRFS_LOOP" "$B"
      btrfs subvolume create "$B/image" >/dev/null
      mkdir "$B/layers"
      tar -C "$B/image" -xf "$S/image.tar" ;;
    vfs)
      mkdir -p "$S/vfs/image" "$S/vfs/layers"
      tar -C "$S/vfs/image" -xf "$S/image.tar" ;;
    lcfs)
      "$LCFS" mkfs --size "$LCFS_SIZE" "$LCFS_IMG" >/dev/null
      mkdir -p "$M"
      "$LCFS" mount "$LCFS_IMG" "$M" >"$OUT/lcfs-mount.out" 2>&1 || { cat "$OUT/lcfs-mount.out" >&2; die "lcfs mount failed"; }
      LCFS_MOUNTED=1
      LCFS_LOG=$(grep -o '/run/lcfs/[^ ]*\.log' "$OUT/lcfs-mount.out" | head -1 || true)
      "$LCFS" layer create image --mount "$M" >/dev/null
      tar -C "$M/layers/image" -xf "$S/image.tar"
      "$LCFS" layer commit image --mount "$M" >/dev/null ;;
  esac
}

# layer_child NAME / layer_empty NAME: make the layer and set LAYER_DIR to where it is used
layer_child() {
  local d
  case $PEER in
    overlay)
      d=$S/overlay/layers/$1; mkdir "$d" "$d/upper" "$d/work" "$d/merged"
      mount -t overlay overlay -o "lowerdir=$S/overlay/image,upperdir=$d/upper,workdir=$d/work" "$d/merged"
      LAYER_DIR=$d/merged ;;
    fuse-overlayfs)
      d=$S/fuse-overlayfs/layers/$1; mkdir "$d" "$d/upper" "$d/work" "$d/merged"
      fuse-overlayfs -o "lowerdir=$S/fuse-overlayfs/image,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>>"$OUT/fuse-overlayfs.log"
      LAYER_DIR=$d/merged ;;
    btrfs)
      btrfs subvolume snapshot "$B/image" "$B/layers/$1" >/dev/null
      LAYER_DIR=$B/layers/$1 ;;
    vfs)
      cp -a "$S/vfs/image" "$S/vfs/layers/$1"
      LAYER_DIR=$S/vfs/layers/$1 ;;
    lcfs)
      "$LCFS" layer create "$1" --parent image --mount "$M" >/dev/null
      LAYER_DIR=$M/layers/$1 ;;
  esac
}
layer_empty() {
  local d
  case $PEER in
    overlay)
      d=$S/overlay/layers/$1; mkdir "$d" "$d/upper" "$d/work" "$d/merged"
      mount -t overlay overlay -o "lowerdir=$S/overlay/empty,upperdir=$d/upper,workdir=$d/work" "$d/merged"
      LAYER_DIR=$d/merged ;;
    fuse-overlayfs)
      d=$S/fuse-overlayfs/layers/$1; mkdir "$d" "$d/upper" "$d/work" "$d/merged"
      fuse-overlayfs -o "lowerdir=$S/fuse-overlayfs/empty,upperdir=$d/upper,workdir=$d/work" "$d/merged" 2>>"$OUT/fuse-overlayfs.log"
      LAYER_DIR=$d/merged ;;
    btrfs)
      btrfs subvolume create "$B/layers/$1" >/dev/null
      LAYER_DIR=$B/layers/$1 ;;
    vfs)
      mkdir "$S/vfs/layers/$1"
      LAYER_DIR=$S/vfs/layers/$1 ;;
    lcfs)
      "$LCFS" layer create "$1" --mount "$M" >/dev/null
      LAYER_DIR=$M/layers/$1 ;;
  esac
}
layer_remove() {
  case $PEER in
    overlay|fuse-overlayfs)
      umount "$S/$PEER/layers/$1/merged"
      rm -rf "$S/$PEER/layers/$1" ;;
    btrfs) btrfs subvolume delete "$B/layers/$1" >/dev/null ;;
    vfs) rm -rf "$S/vfs/layers/$1" ;;
    lcfs) "$LCFS" layer remove "$1" --mount "$M" >/dev/null ;;
  esac
}

# --- measurements ----------------------------------------------------------------------------------
echo "rep,workload,peer,seconds,load1" >"$OUT/samples.csv"
: >"$OUT/fuse-overlayfs.log" # its stderr (it warns "unknown argument ignored: lazytime")
record() { # workload seconds
  local l
  l=$(cut -d' ' -f1 /proc/loadavg)
  echo "$REP,$1,$PEER,$2,$l" >>"$OUT/samples.csv"
  printf 'bench-peers: rep %s %-14s %-15s %10.4f s  (load %s)\n' "$REP" "$1" "$PEER" "$2" "$l"
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
fsops() { # record every "name seconds" line of a fsops.py command run in the layer
  local out
  out=$(timeout "$STEP_TIMEOUT" "$PY" "$HERE/fsops.py" "$@") || { echo "$out"; die "fsops.py $1 on $PEER failed"; }
  while read -r name secs; do
    case $name in
      append) record append "$secs" ;;
      create|stat|unlink) record "small-$name" "$secs" ;;
      read1|read2) record "$name" "$secs" ;;
    esac
  done <<<"$out"
}

w_layers() {
  local i t0 t1 t2 t3
  settle
  t0=$EPOCHREALTIME
  for ((i = 1; i <= LAYERS; i++)); do layer_child "c$REP-$i"; done
  t1=$EPOCHREALTIME
  # untimed: the last layer sees the image
  [ -f "$LAYER_DIR/$(head -1 "$S/image.list" | cut -f2)" ] || die "$PEER: layer c$REP-$LAYERS does not show the image"
  settle
  t2=$EPOCHREALTIME
  for ((i = 1; i <= LAYERS; i++)); do layer_remove "c$REP-$i"; done
  t3=$EPOCHREALTIME
  record layers-create "$(elapsed "$t0" "$t1")"
  record layers-remove "$(elapsed "$t2" "$t3")"
}
w_untar() {
  local t0 t1 n
  layer_empty "u$REP"
  settle
  t0=$EPOCHREALTIME
  timeout "$STEP_TIMEOUT" tar -C "$LAYER_DIR" -xf "$S/rootfs.tar"
  t1=$EPOCHREALTIME
  record untar "$(elapsed "$t0" "$t1")"
  n=$(find "$LAYER_DIR" -mindepth 1 | wc -l)
  [ "$n" -ge "$ROOTFS_ENTRIES" ] || die "$PEER: the untarred layer holds $n entries, the tarball $ROOTFS_ENTRIES"
  layer_remove "u$REP"
}
w_append() {
  layer_child "a$REP"
  settle
  fsops append "$LAYER_DIR" "$S/image.list"
  layer_remove "a$REP"
}
w_small() {
  layer_child "s$REP"
  settle
  fsops small "$LAYER_DIR" "$SMALL_FILES"
  layer_remove "s$REP"
}
w_read() {
  layer_child "r$REP"
  settle
  fsops read "$LAYER_DIR" "$S/image.list"
  layer_remove "r$REP"
}

ROOTFS_ENTRIES=$(( $(tar -tf "$S/rootfs.tar" | grep -cv '^\./$') ))
read -r -a PEER_ARR <<<"$PEERS"
for PEER in "${PEER_ARR[@]}"; do say "setting up $PEER"; setup_peer "$PEER"; done
LCFS_VERSION="-"
if [ -n "$LCFS_ENV" ]; then
  LCFS_VERSION="$("$LCFS" --version 2>&1 | head -1), the binary $LCFS"
elif [ -n "$LCFS" ]; then
  LCFS_VERSION="$("$LCFS" --version 2>&1 | head -1), built from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' plus uncommitted changes')"
fi

N=${#PEER_ARR[@]}
for ((REP = 1; REP <= REPEAT; REP++)); do
  say "repetition $REP of $REPEAT (load $(load))"
  for wl in $WORKLOADS; do
    for ((k = 0; k < N; k++)); do
      PEER=${PEER_ARR[$(((k + REP - 1) % N))]}
      "w_$wl"
    done
  done
done

LOAD_END=$(load)
say "load average at end: $LOAD_END"
CMD="REPEAT=$REPEAT"
[ "$PEERS" = "overlay fuse-overlayfs btrfs vfs lcfs" ] || CMD="$CMD PEERS=\"$PEERS\""
[ "$WORKLOADS" = "layers untar append small read" ] || CMD="$CMD WORKLOADS=\"$WORKLOADS\""
[ "$LAYERS$IMAGE_FILES$SMALL_FILES" = 100123810000 ] || CMD="$CMD LAYERS=$LAYERS IMAGE_FILES=$IMAGE_FILES SMALL_FILES=$SMALL_FILES"
[ "$ROOTFS_ASKED" = minbase ] || CMD="$CMD ROOTFS=$ROOTFS_ASKED"
[ -z "$ROOTFS_TAR" ] || CMD="$CMD ROOTFS_TAR=$ROOTFS_TAR"
[ "$SCRATCH_SIZE$LCFS_SIZE$BTRFS_SIZE" = 12G8G4G ] || CMD="$CMD SCRATCH_SIZE=$SCRATCH_SIZE LCFS_SIZE=$LCFS_SIZE BTRFS_SIZE=$BTRFS_SIZE"
CMD="$CMD${LCFS_ENV:+ LCFS=$LCFS_ENV} bash scripts/bench/peers.sh"
cat >"$OUT/meta.txt" <<EOF
DATE=$(date -u +%Y-%m-%d)
COMMAND=$CMD
REPEATS_DONE=$REPEAT
PEERS=$PEERS
MACHINE=$MACHINE
LOAD_START=$LOAD_START
LOAD_END=$LOAD_END
SCRATCH=one $SCRATCH_SIZE sparse ext4 on a loop device (file under /tmp); the lcfs image ($LCFS_SIZE sparse) and the btrfs loop file ($BTRFS_SIZE) inside it
IMAGE=$IMAGE_DESC
ROOTFS=$ROOTFS_DESC
LCFS_VERSION=$LCFS_VERSION
LAYERS=$LAYERS
IMAGE_FILES=$IMAGE_FILES
SMALL_FILES=$SMALL_FILES
EOF
"$PY" "$HERE/report.py" "$OUT"
say "results: $OUT/results.md (samples: $OUT/samples.csv)"
