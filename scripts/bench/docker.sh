#!/usr/bin/env bash
# make bench-docker (issue 7, part 3): the original LCFS's published Docker benchmarks through
# real engines, lcfs against Docker's and containerd's own drivers on the same machine, the
# configurations interleaved (rotated) within each repetition, medians over REPEAT.
#
# Configurations (CONFIGS; the ratio base of each engine is its overlay2):
#   d28-lcfs d28-overlayfs d28-overlay2 d28-fuse-overlayfs d28-vfs
#       Docker 28.5.2 on its own containerd 2.1.9 (fetched into E2E_CACHE like scripts/e2e):
#       lcfs as containerd proxy snapshotter (and differ), containerd's overlayfs snapshotter
#       (both with Docker's containerd image store), Docker's overlay2, fuse-overlayfs and vfs
#       graph drivers
#   d20-lcfs d20-overlay2 d20-fuse-overlayfs d20-vfs
#       Docker 20.10.24 (bookworm): lcfs as graph-driver plugin, and the graph drivers
# Tests (TESTS):
#   pull     docker pull from a local registry of each of PULL_IMAGES: busybox (a busybox-static
#            tree), debian (debootstrap --variant=minbase bookworm, about 190 MB), layers (busybox
#            plus 5 COPY layers of the Debian tree)
#   build    docker build (legacy builder, --no-cache) of BUILD: zlib = on the Debian image,
#            install gcc/make/libc6-dev from .debs (dpkg -i), unpack zlib's Debian source
#            tarball, configure, make, make test, make install, build and run its zpipe example;
#            small = 5 busybox steps (QUICK)
#   create   for N in COUNTS: create N stopped containers of CREATE_IMAGE through the Engine
#            API, then remove them (each timed; starting is not timed: runc, not storage)
#   commit   docker commit of a container that wrote COMMIT_MB MiB of random data (caches dropped)
#   mem      MEM_CONTAINERS containers each read the same MEM_MB MiB file of their image: page
#            cache growth (Cached in /proc/meminfo, drop_caches first) and the storage daemon's RSS
#
# Settings (environment or make variables):
#   QUICK=1               smoke run: REPEAT=1, busybox only, COUNTS="20 40", BUILD=small,
#                         COMMIT_MB=64, MEM_MB=64, MEM_CONTAINERS=5 (each still overridable)
#   REPEAT=3  CONFIGS=...  TESTS="pull build create commit mem"  PULL_IMAGES="busybox debian layers"
#   COUNTS="20 40 60 80 100"  CREATE_IMAGE=busybox  BUILD=zlib  COMMIT_MB=1024  MEM_MB=256
#   MEM_CONTAINERS=20  DISK_SIZE=60G (the sparse loop file all daemons keep their data on)
#   LCFS_BIN=path (no build)  E2E_CACHE=/var/cache/lcfs-e2e  OUT=target/bench-docker
#
# Run as root. Installs what is missing (like scripts/e2e/run.sh), fetches Docker 28 and
# containerd 2 into E2E_CACHE, builds lcfs, caches the Debian tree and the build's inputs under
# E2E_CACHE/bench-docker, makes one loop-mounted ext4 under /tmp for every daemon's data and the
# registry, writes OUT/{results.md,samples.csv,meta.txt,create.png,build.png,logs/} and stops and
# removes everything it started on exit. A configuration that cannot run here is reported as
# skipped with its reason.
set -euo pipefail
export LC_ALL=C
E2E_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/e2e/lib.sh
source "$E2E_ROOT/scripts/e2e/lib.sh"
# shellcheck source=scripts/e2e/setup.sh
source "$E2E_ROOT/scripts/e2e/setup.sh"
# shellcheck source=scripts/e2e/services.sh
source "$E2E_ROOT/scripts/e2e/services.sh"
say() { echo "bench-docker: $*" >&3; }

if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root (mounts, FUSE, private dockerd and containerd)"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  : "${REPEAT:=1}" "${PULL_IMAGES:=busybox}" "${COUNTS:=20 40}" "${BUILD:=small}"
  : "${COMMIT_MB:=64}" "${MEM_MB:=64}" "${MEM_CONTAINERS:=5}" "${DISK_SIZE:=30G}"
fi
ALL_CONFIGS="d28-lcfs d28-overlayfs d28-overlay2 d28-fuse-overlayfs d28-vfs d20-lcfs d20-overlay2 d20-fuse-overlayfs d20-vfs"
REPEAT=${REPEAT:-3}
CONFIGS=${CONFIGS:-$ALL_CONFIGS}
TESTS=${TESTS:-pull build create commit mem}
PULL_IMAGES=${PULL_IMAGES:-busybox debian layers}
COUNTS=${COUNTS:-20 40 60 80 100}
CREATE_IMAGE=${CREATE_IMAGE:-busybox}
BUILD=${BUILD:-zlib}
COMMIT_MB=${COMMIT_MB:-1024}
MEM_MB=${MEM_MB:-256}
MEM_CONTAINERS=${MEM_CONTAINERS:-20}
DISK_SIZE=${DISK_SIZE:-60G}
E2E_CACHE=${E2E_CACHE:-/var/cache/lcfs-e2e}
BENCH_CACHE=$E2E_CACHE/bench-docker
OUT=${OUT:-$E2E_ROOT/target/bench-docker}
export E2E_CACHE BENCH_CACHE OUT TESTS PULL_IMAGES COUNTS CREATE_IMAGE BUILD COMMIT_MB MEM_MB MEM_CONTAINERS

# The images the registry must hold.
PREPARE_IMAGES=busybox
for img in $PULL_IMAGES; do PREPARE_IMAGES="$PREPARE_IMAGES $img"; done
[[ " $TESTS " != *" build "* ]] || [ "$BUILD" = small ] || PREPARE_IMAGES="$PREPARE_IMAGES debian"
[ "$CREATE_IMAGE" = busybox ] || PREPARE_IMAGES="$PREPARE_IMAGES $CREATE_IMAGE"
[[ " $TESTS " != *" mem "* ]] || PREPARE_IMAGES="$PREPARE_IMAGES mem"
PREPARE_IMAGES=$(tr ' ' '\n' <<< "$PREPARE_IMAGES" | awk 'NF && !seen[$0]++' | tr '\n' ' ')
export PREPARE_IMAGES

mkdir -p "$OUT"
rm -rf "$OUT/logs" "$OUT/status"
rm -f "$OUT/samples.csv" "$OUT/failures.txt" "$OUT/skipped.txt" "$OUT/results.md" "$OUT"/*.png
mkdir -p "$OUT/logs/setup" "$OUT/status"
E2E_STEP_DIR=$OUT/logs/setup
echo "rep,config,test,value,unit,load1" > "$OUT/samples.csv"
: > "$OUT/failures.txt"
: > "$OUT/skipped.txt"

TOP=
finish() {
  local rc=$?
  trap - EXIT
  set +e
  report_failure "$rc"
  run_cleanups
  if [ -n "$TOP" ]; then
    unmount_under "$TOP"
    if ! grep -q " $TOP" /proc/mounts; then rm -rf "$TOP"; else say "left $TOP (still mounted)"; fi
  fi
  [ -z "${KEY_JSON_EXISTED:-}" ] || restore_shared_state
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

load() { cut -d' ' -f1-3 /proc/loadavg; }
MACHINE="$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), nproc $(nproc), \
$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo), kernel $(uname -r)"
LOAD_START=$(load)
say "machine: $MACHINE; load average at start: $LOAD_START"

# ---- what the configurations need --------------------------------------------------------------

E2E_APT_PACKAGES+=(fuse-overlayfs debootstrap python3-matplotlib bzip2)
step "apt-get install what is missing (${E2E_APT_PACKAGES[*]})" install_packages
ENGINE_DIR=
if [[ " $CONFIGS " == *" d28-"* ]]; then
  try_step "Docker 28 and containerd 2 into $E2E_CACHE/sid" fetch_engines sid
  if [ "$TRY_RC" = 0 ]; then
    ENGINE_DIR=$E2E_CACHE/sid/root
  fi
fi
export ENGINE_DIR
LCFS=
if [[ " $CONFIGS " == *"-lcfs "* ]]; then
  # shellcheck source=scripts/setup.sh
  [ -n "${LCFS_BIN:-}" ] || source "$E2E_ROOT/scripts/setup.sh"
  try_step "cargo build --release -p lcfs-fuse" build_lcfs
  if [ "$TRY_RC" = 0 ]; then
    if [ -n "${LCFS_BIN:-}" ]; then LCFS=$LCFS_BIN; else
      LCFS=$(cd "$E2E_ROOT" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/lcfs
    fi
  fi
fi
export LCFS

# The Debian tree (debootstrap --variant=minbase of this machine's suite from its archive), as
# a tarball cached in BENCH_CACHE/minbase.tar.
make_minbase() {
  [ ! -s "$BENCH_CACHE/minbase.tar" ] || { echo "cached: $BENCH_CACHE/minbase.tar"; return 0; }
  local archive suite d=$BENCH_CACHE/minbase.tmp
  archive=$(debian_archive_uri)
  # shellcheck disable=SC1091
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  rm -rf "$d"
  debootstrap --variant=minbase "$suite" "$d" "$archive"
  unmount_under "$d"
  rm -rf "$d"/var/cache/apt/archives/*.deb
  tar -C "$d" --numeric-owner -cf "$BENCH_CACHE/minbase.tar.tmp" .
  mv "$BENCH_CACHE/minbase.tar.tmp" "$BENCH_CACHE/minbase.tar"
  rm -rf "$d"
}

# The zlib build's context, cached in BENCH_CACHE/build-zlib: the .debs of gcc, make and
# libc6-dev not already in the minbase tree (debootstrap --download-only --include), zlib's
# Debian source tarball (apt-get source with a private apt configuration naming deb-src of this
# machine's archive), and the Dockerfile.
make_build_zlib() {
  local c=$BENCH_CACHE/build-zlib
  [ ! -s "$c/Dockerfile" ] || { echo "cached: $c"; return 0; }
  local archive suite t=$BENCH_CACHE/zlib.tmp keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  archive=$(debian_archive_uri)
  # shellcheck disable=SC1091
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  rm -rf "$t" "$c"
  mkdir -p "$t/lists/partial" "$t/cache/archives/partial" "$t/src" "$c.tmp/debs"
  debootstrap --variant=minbase --download-only --include=gcc,make,libc6-dev "$suite" "$t/dl" "$archive"
  tar -xOf "$BENCH_CACHE/minbase.tar" ./var/lib/dpkg/status | awk '/^Package:/ { print $2 }' | sort -u > "$t/have"
  local deb
  for deb in "$t"/dl/var/cache/apt/archives/*.deb; do
    grep -qxF "$(dpkg-deb -f "$deb" Package)" "$t/have" || cp "$deb" "$c.tmp/debs/"
  done
  echo "deb-src [signed-by=$keyring] $archive $suite main" > "$t/sources.list"
  private_apt_options "$t"
  apt-get "${APT_OPTS[@]}" update
  (cd "$t/src" && apt-get "${APT_OPTS[@]}" source --download-only zlib)
  local orig
  orig=$(ls "$t"/src/zlib_*.orig.tar.*)
  mkdir "$t/x"
  tar -C "$t/x" -xf "$orig"
  tar -C "$t/x" -czf "$c.tmp/zlib.tar.gz" .
  cat > "$c.tmp/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
COPY debs/ /tmp/debs/
RUN dpkg -i /tmp/debs/*.deb && rm -rf /tmp/debs
COPY zlib.tar.gz /src/
RUN cd /src && tar -xzf zlib.tar.gz && mv zlib-* zlib && cd zlib && ./configure --prefix=/usr/local
RUN cd /src/zlib && make -j2 && make test
RUN cd /src/zlib && make install && gcc -O2 -o /usr/local/bin/zpipe examples/zpipe.c -L/usr/local/lib -lz
RUN echo "built by lcfs bench-docker" | zpipe | zpipe -d && rm -rf /src
EOF
  mv "$c.tmp" "$c"
  rm -rf "$t"
  echo "$(ls "$c/debs" | wc -l) .debs ($(du -sh "$c/debs" | cut -f1)), $(basename "$orig")"
}

# The small build's context (QUICK): five steps of busybox work on the busybox image.
make_build_small() {
  local c=$BENCH_CACHE/build-small
  mkdir -p "$c"
  echo "payload copied by the build" > "$c/payload.txt"
  cat > "$c/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
ENV GREETING=hello
WORKDIR /app
COPY payload.txt /app/payload.txt
RUN cp -a /bin /app/bin-copy && tar -cf /app/bin.tar /bin && gzip -9 /app/bin.tar
RUN rm -rf /app/bin-copy && echo "$GREETING" > /app/built.txt && md5sum /app/* > /app/sums
EOF
}

mkdir -p "$BENCH_CACHE"
if [[ " $PREPARE_IMAGES " == *" debian "* || " $PREPARE_IMAGES " == *" layers "* ]]; then
  step "the Debian minbase tree (debootstrap, cached in $BENCH_CACHE)" make_minbase
fi
if [[ " $TESTS " == *" build "* ]]; then
  step "the build context ($BUILD, cached in $BENCH_CACHE)" "make_build_$BUILD"
fi

# ---- which configurations can run ---------------------------------------------------------------

# Prints why CONFIG cannot run here, or nothing.
skip_reason() {
  local config=$1 driver=${1#d??-}
  case $config in
    d28-lcfs | d28-overlayfs | d28-overlay2 | d28-fuse-overlayfs | d28-vfs)
      [ -n "$ENGINE_DIR" ] || { echo "Docker 28 and containerd 2 could not be fetched (log: $OUT/logs/setup)"; return; } ;;
    d20-lcfs | d20-overlay2 | d20-fuse-overlayfs | d20-vfs)
      [ -x /usr/sbin/dockerd ] || { echo "no /usr/sbin/dockerd (apt package docker.io)"; return; } ;;
    *) echo "unknown configuration (known: $ALL_CONFIGS)"; return ;;
  esac
  case $driver in
    lcfs)
      [ -x "$LCFS" ] || { echo "no lcfs binary (the build failed: $OUT/logs/setup)"; return; }
      [ -e /dev/fuse ] || { echo "no /dev/fuse"; return; }
      if [ "$config" = d20-lcfs ] && sock_listening "$PLUGIN_SOCK"; then
        echo "another process serves $PLUGIN_SOCK: $(sock_listeners "$PLUGIN_SOCK")"; return
      fi ;;
    fuse-overlayfs)
      command -v fuse-overlayfs >/dev/null || { echo "no fuse-overlayfs (apt package fuse-overlayfs)"; return; }
      [ -e /dev/fuse ] || { echo "no /dev/fuse"; return; } ;;
    overlay2 | overlayfs)
      grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || { echo "no overlay file system in this kernel"; return; } ;;
  esac
}
RUN_CONFIGS=()
for c in $CONFIGS; do
  why=$(skip_reason "$c")
  if [ -n "$why" ]; then
    say "skipping $c: $why"
    printf '%s\t%s\n' "$c" "$why" >> "$OUT/skipped.txt"
  else
    RUN_CONFIGS+=("$c")
  fi
done
[ ${#RUN_CONFIGS[@]} -gt 0 ] || die "no configuration can run here (see $OUT/skipped.txt)"

# ---- the scratch file system and the registry -----------------------------------------------

note_shared_state
TOP=$(mktemp -d /tmp/lcfs-bench-docker.XXXXXX)
S=$TOP/s
W=$S
L=$OUT/logs
make_scratch() {
  mkdir -p "$S"
  truncate -s "$DISK_SIZE" "$TOP/disk.img"
  mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$TOP/disk.img"
  mount -o loop "$TOP/disk.img" "$S"
}
step "a $DISK_SIZE sparse ext4 on a loop device for every daemon's data ($S)" make_scratch
step "start the registry" start_registry
export S REGISTRY

# The images go to the registry through the first configuration that runs on a graph driver
# (or the first that runs at all).
PREP=${RUN_CONFIGS[0]}
for c in "${RUN_CONFIGS[@]}"; do
  case $c in *-overlay2 | *-vfs) PREP=$c; break ;; esac
done
say "preparing the registry's images ($PREPARE_IMAGES) through $PREP"
bash "$E2E_ROOT/scripts/bench/docker-one.sh" prepare "$PREP" \
  || die "could not push the benchmark's images (logs: $OUT/logs/prepare)"

# ---- the runs ---------------------------------------------------------------------------------

N=${#RUN_CONFIGS[@]}
for ((REP = 1; REP <= REPEAT; REP++)); do
  say "repetition $REP of $REPEAT (load $(load))"
  for ((k = 0; k < N; k++)); do
    c=${RUN_CONFIGS[$(((k + REP - 1) % N))]}
    bash "$E2E_ROOT/scripts/bench/docker-one.sh" "$c" "$REP" \
      || say "rep $REP $c: $(cat "$OUT/status/$c-$REP" 2>/dev/null || echo failed)"
    # Give the blocks the run freed back to /tmp (the loop file is sparse), untimed.
    fstrim "$S" 2>/dev/null || true
  done
done

LOAD_END=$(load)
say "load average at end: $LOAD_END"
LCFS_VERSION=-
[ -z "$LCFS" ] || LCFS_VERSION="$("$LCFS" --version 2>&1 | head -n1), built from $(git -C "$E2E_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$E2E_ROOT" diff --quiet HEAD 2>/dev/null || echo ' plus uncommitted changes')"
{
  echo "DATE=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "MACHINE=$MACHINE"
  echo "LOAD_START=$LOAD_START"
  echo "LOAD_END=$LOAD_END"
  echo "REPEAT=$REPEAT"
  echo "QUICK=$QUICK"
  echo "CONFIGS=$CONFIGS"
  echo "TESTS=$TESTS"
  echo "PULL_IMAGES=$PULL_IMAGES"
  echo "COUNTS=$COUNTS"
  echo "CREATE_IMAGE=$CREATE_IMAGE"
  echo "BUILD=$BUILD"
  echo "COMMIT_MB=$COMMIT_MB"
  echo "MEM_MB=$MEM_MB"
  echo "MEM_CONTAINERS=$MEM_CONTAINERS"
  echo "LCFS_VERSION=$LCFS_VERSION"
  echo "SCRATCH=one $DISK_SIZE sparse ext4 on a loop device (file under /tmp) holding every daemon's data, the lcfs images and the registry"
  for c in "${RUN_CONFIGS[@]}"; do
    [ ! -s "$OUT/logs/$c-1/engine" ] || echo "ENGINE_$c=$(cut -d: -f2- "$OUT/logs/$c-1/engine" | sed 's/^ //')"
  done
} > "$OUT/meta.txt"
# Debian's python3 (python3-matplotlib is installed for it), not one first on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" "$E2E_ROOT/scripts/bench/docker-report.py" "$OUT" >&3
say "results: $OUT/results.md (samples: $OUT/samples.csv, logs: $OUT/logs)"
