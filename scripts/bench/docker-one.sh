#!/usr/bin/env bash
# One configuration of `make bench-docker` for one repetition: starts its private daemons (lcfs,
# containerd, dockerd, with the e2e scripts' functions of scripts/e2e/services.sh), runs the
# timed tests, appends the samples to $OUT/samples.csv, and stops and removes everything on exit.
# Run by scripts/bench/docker.sh, which passes everything in the environment:
#
#   bash scripts/bench/docker-one.sh CONFIG REP     CONFIG = d28-DRIVER (Docker 28 on its own
#                                                    containerd) or d20-DRIVER (Docker 20.10)
#   bash scripts/bench/docker-one.sh prepare CONFIG  pushes the benchmark's images to $REGISTRY
#
# A failing test is written to $OUT/failures.txt and the next test runs; a failing daemon start
# ends the run with its reason in $OUT/status/CONFIG-REP (docker.sh reports it as skipped).
set -euo pipefail
E2E_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/e2e/lib.sh
source "$E2E_ROOT/scripts/e2e/lib.sh"
# shellcheck source=scripts/e2e/services.sh
source "$E2E_ROOT/scripts/e2e/services.sh"
# shellcheck source=scripts/e2e/workload.sh
source "$E2E_ROOT/scripts/e2e/workload.sh"
say() { echo "bench-docker: $*" >&3; }

MODE=run
if [ "$1" = prepare ]; then MODE=prepare; shift; fi
CONFIG=${1:?usage: docker-one.sh [prepare] CONFIG [REP]}
REP=${2:-0}
: "${OUT:?}" "${S:?}" "${REGISTRY:?}" "${BENCH_CACHE:?}"
case $CONFIG in
  d28-*) ROUTE=containerd ;;
  d20-*) ROUTE=plugin ;;
  *) die "unknown configuration $CONFIG (d28-DRIVER or d20-DRIVER)" ;;
esac
DRIVER=${CONFIG#d??-}
RUN_NAME=$CONFIG-$REP
[ "$MODE" = run ] || RUN_NAME=prepare
W=$S/$RUN_NAME
L=$OUT/logs/$RUN_NAME
E2E_STEP_DIR=$L/steps
export E2E_TIMEOUT=${E2E_TIMEOUT:-1200} E2E_LCFS_SIZE=${E2E_LCFS_SIZE:-16G}
mkdir -p "$W" "$E2E_STEP_DIR" "$OUT/status"
rm -f "$OUT/status/$RUN_NAME"

on_exit() {
  local rc=$?
  trap - EXIT
  set +e
  report_failure "$rc" 2>/dev/null
  if [ "$rc" != 0 ]; then
    local why=${E2E_STEP:-start}
    echo "failed at \"$why\": $(grep -v '^\s*$' "${E2E_STEP_LOG:-/dev/null}" 2>/dev/null | tail -n1 | cut -c1-200)" > "$OUT/status/$RUN_NAME"
  else
    echo ok > "$OUT/status/$RUN_NAME"
  fi
  run_cleanups
  unmount_under "$W"
  rm -rf "$W"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- helpers -------------------------------------------------------------------------------

# Writes back what earlier steps left dirty, untimed, before every measurement.
settle() {
  sync -f "$S"
  sync
}

drop_caches() {
  settle
  echo 3 > /proc/sys/vm/drop_caches
}

# record TEST VALUE UNIT: one sample line (with the 1-minute load) and a line on the console.
record() {
  local l
  l=$(cut -d' ' -f1 /proc/loadavg)
  echo "$REP,$CONFIG,$1,$2,$3,$l" >> "$OUT/samples.csv"
  printf 'bench-docker: rep %s %-20s %-14s %10.3f %s  (load %s)\n' "$REP" "$CONFIG" "$1" "$2" "$3" "$l" >&3
}

# Seconds a command takes (its output to the step's log): timed COMMAND [ARGS...].
timed() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$@" >&2
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

ref() { echo "$REGISTRY/bench/$1:1"; }

# Pulls IMAGE (a short name) untimed unless already present.
ensure_image() {
  dk image inspect "$(ref "$1")" >/dev/null 2>&1 || dk pull -q "$(ref "$1")"
}

# The resident memory (MiB) of the process(es) serving the storage from user space: the lcfs
# daemon, or every fuse-overlayfs process working under this run's directory; 0 for the
# kernel's drivers.
storage_rss_mb() {
  local kb=0 pid
  case $DRIVER in
    lcfs) kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$LCFS_PID/status") ;;
    fuse-overlayfs)
      for pid in $(pgrep -x fuse-overlayfs || true); do
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$W/" || continue
        kb=$((kb + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
      done
      ;;
  esac
  awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }'
}

cached_kb() {
  awk '/^Cached:/ { print $2 }' /proc/meminfo
}

# The page cache (MiB) the mem test's containers hold, without what the rest of the machine
# does meanwhile: the cache charged to each container's memory cgroup (cgroup v1 total_cache:
# pages a container's reads brought in, a shared page counted once, for the container that read
# it first), plus for the FUSE drivers the cached pages of their backing files under the run's
# directory (fincore: the lcfs image file, fuse-overlayfs's lower files), which the storage
# daemon reads in its own cgroup.
charged_cache_mb() {
  local i pid memcg bytes=0 c
  for ((i = 1; i <= MEM_CONTAINERS; i++)); do
    pid=$(dk inspect -f '{{.State.Pid}}' "mem$i")
    memcg=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' "/proc/$pid/cgroup")
    c=$(awk '$1 == "total_cache" { print $2 }' "/sys/fs/cgroup/memory$memcg/memory.stat" 2>/dev/null || echo 0)
    bytes=$((bytes + ${c:-0}))
  done
  case $DRIVER in
    lcfs | fuse-overlayfs)
      c=$(find "$W" -xdev -type f -print0 | xargs -0 -r fincore --bytes --noheadings --output RES 2>/dev/null \
        | awk '{ s += $1 } END { printf "%d", s }')
      bytes=$((bytes + ${c:-0}))
      ;;
  esac
  awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }'
}

# ---- the tests -------------------------------------------------------------------------------

# docker pull of each of PULL_IMAGES from the local registry (kept: later tests use them).
t_pull() {
  local img secs
  for img in $PULL_IMAGES; do
    settle
    secs=$(timed dk pull "$(ref "$img")")
    record "pull-$img" "$secs" s
  done
}

# docker build (legacy builder, no cache) of the context prepared by docker.sh in
# $BENCH_CACHE/build-$BUILD: zlib compiles zlib on the Debian image after installing gcc from
# .debs; small is a few busybox steps on the busybox image.
t_build() {
  local base=busybox secs
  [ "$BUILD" = small ] || base=debian
  ensure_image "$base"
  rm -rf "$W/build"
  cp -a "$BENCH_CACHE/build-$BUILD" "$W/build"
  settle
  secs=$(DOCKER_BUILDKIT=0 timed dk build --no-cache --pull=false --build-arg "BASE=$(ref "$base")" -t bench/built:1 "$W/build")
  record build "$secs" s
  rm -rf "$W/build"
}

# COUNTS rounds: create N stopped containers of CREATE_IMAGE through the Engine API (timed), then
# remove them (timed). Starting them is not part of it (runc and cgroups, not storage).
t_create() {
  ensure_image "$CREATE_IMAGE"
  local n secs
  for n in $COUNTS; do
    settle
    secs=$(python3 "$E2E_ROOT/scripts/bench/engine.py" "$DOCKER_SOCK" create "$(ref "$CREATE_IMAGE")" "$n" "$W/ids")
    record "create-$n" "$secs" s
    settle
    secs=$(python3 "$E2E_ROOT/scripts/bench/engine.py" "$DOCKER_SOCK" rm "$W/ids")
    record "rm-$n" "$secs" s
  done
}

# A container writes COMMIT_MB MiB of random data and exits; after sync and drop_caches (the
# original remounted and restarted the engine instead), docker commit of it is timed.
t_commit() {
  ensure_image busybox
  dk rm -f bigwriter >/dev/null 2>&1 || true
  dk run --name bigwriter --network none --pull never "$(ref busybox)" \
    dd if=/dev/urandom of=/big bs=1M count="$COMMIT_MB"
  drop_caches
  local secs
  secs=$(timed dk commit bigwriter bench/committed:1)
  record commit "$secs" s
  dk rm bigwriter
  dk rmi bench/committed:1
}

# MEM_CONTAINERS containers of the mem image each read its MEM_MB MiB file once and stay up: the
# growth of the page cache (Cached in /proc/meminfo: the whole machine's, so other work counts
# too), the page cache charged to the containers and the storage daemon (charged_cache_mb), and
# the RSS of the storage's user-space daemon, if any. The containers are started first and wait for a file to appear in a directory
# bind-mounted into them; caches are dropped just before it appears, so that the measured window
# holds the reads and not the start of the containers (runc, shims: the same for every driver).
t_mem() {
  ensure_image mem
  local i c0 c1 rss go=$W/mem-go
  rm -rf "$go"
  mkdir -p "$go"
  for ((i = 1; i <= MEM_CONTAINERS; i++)); do
    dk run -d --name "mem$i" --network none --pull never -v "$go:/go:ro" "$(ref mem)" \
      sh -c 'echo started; while [ ! -e /go/now ]; do sleep 0.2; done; cat /data/big > /dev/null && echo read-done; exec sleep 3600'
  done
  for ((i = 1; i <= MEM_CONTAINERS; i++)); do
    wait_for 120 "container mem$i to start" bash -c "$DOCKER_CLI logs mem$i 2>&1 | grep -q started" \
      || die "container mem$i did not start in 120 s"
  done
  drop_caches
  c0=$(cached_kb)
  touch "$go/now"
  for ((i = 1; i <= MEM_CONTAINERS; i++)); do
    wait_for 300 "container mem$i to read its file" bash -c "$DOCKER_CLI logs mem$i 2>&1 | grep -q read-done" \
      || die "container mem$i did not read its file in 300 s"
  done
  c1=$(cached_kb)
  rss=$(storage_rss_mb)
  record mem-cache "$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (b - a) / 1024 }')" MiB
  record mem-charged "$(charged_cache_mb)" MiB
  record mem-rss "$rss" MiB
  for ((i = 1; i <= MEM_CONTAINERS; i++)); do dk rm -f "mem$i"; done
  rm -rf "$go"
}

# ---- preparing the registry ----------------------------------------------------------------

# Pushes busybox (a busybox-static tree, workload.sh), debian (debootstrap minbase, cached by
# docker.sh), layers (busybox plus 5 COPY layers of the Debian tree) and mem (busybox plus one
# MEM_MB file of random data) to the registry, those that PREPARE_IMAGES names.
prepare_images() {
  import_base_image
  dk tag base:1 "$(ref busybox)"
  dk push -q "$(ref busybox)"
  local img
  for img in $PREPARE_IMAGES; do
    case $img in
      busybox) ;;
      debian)
        dk import "$BENCH_CACHE/minbase.tar" "$(ref debian)"
        dk push -q "$(ref debian)"
        ;;
      layers)
        local ctx=$W/layers-ctx
        mkdir -p "$ctx"
        tar -C "$ctx" -xf "$BENCH_CACHE/minbase.tar" ./usr ./etc ./var
        cat > "$ctx/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
COPY usr/bin /usr/bin/
COPY usr/lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/
COPY usr/share /usr/share/
COPY usr/sbin /usr/sbin/
COPY var /var/
EOF
        DOCKER_BUILDKIT=0 dk build -q --pull=false --build-arg "BASE=$(ref busybox)" -t "$(ref layers)" "$ctx"
        dk push -q "$(ref layers)"
        rm -rf "$ctx"
        ;;
      mem)
        mkdir -p "$W/mem-ctx"
        printf 'ARG BASE\nFROM $BASE\nRUN mkdir -p /data && dd if=/dev/urandom of=/data/big bs=1M count=%s\n' "$MEM_MB" > "$W/mem-ctx/Dockerfile"
        DOCKER_BUILDKIT=0 dk build -q --pull=false --build-arg "BASE=$(ref busybox)" -t "$(ref mem)" "$W/mem-ctx"
        dk push -q "$(ref mem)"
        ;;
    esac
  done
  echo "  pushed to $REGISTRY: $PREPARE_IMAGES" >&3
}

# ---- the run -------------------------------------------------------------------------------

set_engine
echo "$CONFIG: $ENGINE_NAME, storage driver $DRIVER$([ "$LCFS_DIFFER" != yes ] || echo ' (with the lcfs differ)')" > "$L/engine"
[ "$MODE" = prepare ] || say "== rep $REP, $CONFIG: $(cat "$L/engine") (load $(cut -d' ' -f1-3 /proc/loadavg))"
if [ "$DRIVER" = lcfs ]; then
  on_cleanup 'stop_lcfs'
  # shellcheck disable=SC2016 # evaluated at exit
  on_cleanup 'unmount_under "$W/docker"; unmount_under "$W/containerd"'
  step "lcfs mkfs --size $E2E_LCFS_SIZE" mkfs_lcfs
  step "start lcfs" start_lcfs
fi
if [ "$ROUTE" = containerd ]; then
  step "start containerd" start_containerd
fi
step "start dockerd --storage-driver $DOCKER_STORAGE_DRIVER" start_dockerd
step "docker info: Storage Driver must be $DOCKER_STORAGE_DRIVER" check_storage_driver

if [ "$MODE" = prepare ]; then
  step "push the benchmark's images to the registry" prepare_images
  exit 0
fi

# A failing test is noted and the next one runs.
for t in $TESTS; do
  try_step "test $t" "t_$t"
  if [ "$TRY_RC" != 0 ]; then
    log=$(printf '%s/step-%02d.log' "$E2E_STEP_DIR" "$E2E_STEP_NO")
    echo "$REP,$CONFIG,$t,$(grep -v '^\s*$' "$log" 2>/dev/null | tail -n1 | tr ',' ';' | cut -c1-200)" >> "$OUT/failures.txt"
  fi
done
