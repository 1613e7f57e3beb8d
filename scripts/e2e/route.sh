#!/usr/bin/env bash
# One end-to-end route with one storage driver, in a directory of its own, everything stopped
# and removed on exit (by the EXIT trap, in reverse order of start):
#
#   bash scripts/e2e/route.sh containerd lcfs|overlayfs|overlay2   Docker 28 (or 26) on a private containerd
#   bash scripts/e2e/route.sh plugin lcfs|overlay2                  Docker 20.10 (bookworm)
#
# Run by run.sh, which first installs the packages, fetches the engines and builds lcfs, and
# passes ENGINE_DIR (the unpacked newer Docker and containerd, for the containerd route), LCFS
# (the lcfs binary, for the lcfs driver) and E2E_SUMMARY_FILE (where the summary line goes).
# Prints each step with its time and a summary line; exits non-zero on the first failure, after
# printing the failing step's output and the tails of the daemons' logs.
set -euo pipefail
E2E_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/e2e/lib.sh
source "$E2E_ROOT/scripts/e2e/lib.sh"
# shellcheck source=scripts/e2e/services.sh
source "$E2E_ROOT/scripts/e2e/services.sh"
# shellcheck source=scripts/e2e/workload.sh
source "$E2E_ROOT/scripts/e2e/workload.sh"

ROUTE=${1:?usage: route.sh containerd|plugin DRIVER}
DRIVER=${2:?usage: route.sh containerd|plugin DRIVER}

# Refuses a driver the route cannot use, then sets the route's engine and the storage driver
# dockerd is given (set_engine, services.sh).
choose_engine() {
  case "$ROUTE/$DRIVER" in
    containerd/lcfs | containerd/overlayfs | containerd/overlay2 | plugin/lcfs | plugin/overlay2) ;;
    plugin/overlayfs) die "the plugin route (Docker 20.10) has no containerd image store: use overlay2 there" ;;
    *) die "unknown route or driver: $ROUTE $DRIVER (routes: containerd, plugin; drivers: lcfs, overlayfs, overlay2)" ;;
  esac
  set_engine
}

# Makes the run's directories: TOP (mktemp under /tmp), its logs in TOP/logs and step logs in
# TOP/steps, and the working directory W on which every daemon keeps its data. W is an ext4 file
# system on a loop device (TOP/disk.img, sparse) unless E2E_LOOP=0: RUNTIMES.md measured file
# creation on this machine's root disk 7-10x slower than on a loop device, and the same file
# system under every driver keeps their timings comparable.
make_dirs() {
  TOP=$(mktemp -d "/tmp/lcfs-e2e-$ROUTE-$DRIVER.XXXXXX")
  L=$TOP/logs
  E2E_STEP_DIR=$TOP/steps
  W=$TOP/w
  mkdir -p "$L" "$E2E_STEP_DIR" "$W"
  if [ "${E2E_LOOP:-1}" = 1 ]; then
    truncate -s "${E2E_DISK_SIZE:-20G}" "$TOP/disk.img"
    mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 "$TOP/disk.img"
    mount -o loop "$TOP/disk.img" "$W"
  fi
}

# The EXIT trap: reports a failure (the step, its output, the daemons' logs), stops what the run
# started in reverse order, unmounts whatever is left under the run's directory, puts the shared
# places back, removes the directory (keeping the logs after a failure, or everything with
# E2E_KEEP=1) and prints the summary line, also into E2E_SUMMARY_FILE.
on_exit() {
  local rc=$?
  trap - EXIT
  set +e
  report_failure "$rc"
  run_cleanups
  if [ -n "${TOP:-}" ]; then
    unmount_under "$TOP"
    if [ "${E2E_KEEP:-0}" = 1 ]; then
      say "kept $TOP"
    elif [ "$rc" != 0 ]; then
      find "$TOP" -mindepth 1 -maxdepth 1 ! -name logs ! -name steps -exec rm -rf {} +
      say "logs kept in $TOP/logs and $TOP/steps"
    else
      rm -rf "$TOP"
    fi
  fi
  [ -z "${KEY_JSON_EXISTED:-}" ] || restore_shared_state
  local total verdict
  total=$(elapsed "$ROUTE_START" "$(now)")
  if [ "$rc" = 0 ]; then
    verdict="PASS, $E2E_STEP_NO steps in $total s"
  elif [ "$rc" = 130 ]; then
    verdict="INTERRUPTED at step $E2E_STEP_NO ($E2E_STEP) after $total s"
  elif [ -n "$E2E_STEP" ]; then
    verdict="FAIL at step $E2E_STEP_NO ($E2E_STEP) after $total s"
  else
    verdict="FAIL after $total s"
  fi
  local line="e2e-docker: $ROUTE route (${ENGINE_NAME:-engine not chosen}), storage driver ${DRIVER}: $verdict"
  echo >&3
  printf '%s\n' "${E2E_TIMINGS[@]}" >&3
  echo "$line" >&3
  [ -z "${E2E_SUMMARY_FILE:-}" ] || echo "$line" >> "$E2E_SUMMARY_FILE"
  if [ -n "${E2E_RESULTS:-}" ]; then
    local t
    for t in "${E2E_TIMINGS[@]}"; do
      printf '%s\t%s\t%s\t%s\n' "$(date -Is)" "$ROUTE" "$DRIVER" "$(sed 's/^ *\([0-9.]*\) s  /\1\t/' <<< "$t")"
    done >> "$E2E_RESULTS"
  fi
  exit "$rc"
}

# Run by `step` after each step: on the plugin route, the shared plugin socket must still be
# served by this run's lcfs daemon.
after_step() {
  check_plugin_owner
}

ROUTE_START=$(now)
trap on_exit EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" = 0 ] || die "run as root"
choose_engine
say "== $ROUTE route: $ENGINE_NAME, storage driver $DRIVER$([ "$LCFS_DIFFER" != yes ] || echo " (with the lcfs differ: Apply$([ "$LCFS_DIFFS" != yes ] || echo ' and Diff'))")"
note_shared_state
make_dirs
echo "run directory $TOP (data on $W)" >&3

step "start the registry" start_registry
if [ "$DRIVER" = lcfs ]; then
  on_cleanup 'stop_lcfs'
  # shellcheck disable=SC2016 # evaluated at exit
  # Mounts dockerd or containerd leave (bind mounts of lcfs layers) must go before lcfs unmounts.
  on_cleanup 'unmount_under "$W/docker"; unmount_under "$W/containerd"'
  step "lcfs mkfs --size ${E2E_LCFS_SIZE:-8G}" mkfs_lcfs
  step "start lcfs: lcfs mount IMG MNT $(lcfs_service_args)" start_lcfs
fi
if [ "$ROUTE" = containerd ]; then
  step "start containerd (own config, CRI off$([ "$DRIVER" != lcfs ] || echo ', proxy snapshotter lcfs')$([ "$LCFS_DIFFER" != yes ] || echo ', proxy differ lcfs-diff'))" start_containerd
fi
step "start dockerd --storage-driver $DOCKER_STORAGE_DRIVER" start_dockerd
step "docker info: Storage Driver must be $DOCKER_STORAGE_DRIVER" check_storage_driver
step "docker import of a busybox-static tree as base:1" import_base_image
step "docker run: a container writes a file and deletes one" run_writer
step "docker diff of that container" diff_writer
step "docker commit of that container" commit_writer
step "docker run of the committed image: read the file back" run_committed
step "docker build (legacy builder, 5 steps on base:1)" build_image
step "docker run of the built image" run_built
step "docker push to the local registry, rmi, pull, run" registry_round_trip
step "50 x (docker create + docker rm)" create_remove_cycles 50
if [ "$DRIVER" = lcfs ]; then
  on_cleanup 'stop_creators'
  step "kill -9 the lcfs daemon while containers are created; detach its mount; lcfs fsck" kill_lcfs_during_creates
  step "restart lcfs on the same image; the interrupted creations end" restart_lcfs
  step "after the restart: committed and pulled images run, leftovers removed, create/rm works" check_after_restart
  step "stop dockerd$([ "$ROUTE" != containerd ] || echo ' and containerd'), lcfs umount, lcfs fsck" shutdown_and_fsck
fi
