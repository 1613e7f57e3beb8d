#!/usr/bin/env bash
# The end-to-end runs of lcfs with real engines (`make e2e-docker`). As root on a Debian 12
# machine that reaches only the Debian archive, it installs what is missing, fetches a newer
# Docker and containerd into a cache (never installed system-wide), builds lcfs, then runs the
# same workload on each route, each in a private directory with private daemons:
#
#   containerd  Docker 28 (suite sid; 26 with E2E_SUITE=trixie) on a private containerd 2 (1.7),
#               lcfs as a proxy snapshotter, Docker's containerd image store
#   plugin      Docker 20.10 (bookworm) with lcfs as a graph-driver plugin
#               (/run/docker/plugins/lcfs.sock, dockerd --experimental)
#
# Settings (environment, or make variables: make e2e-docker E2E_DRIVER=overlay2):
#   E2E_ROUTES            routes to run, default "containerd plugin"
#   E2E_DRIVER            lcfs (default), overlay2 (dockerd's own graph driver, no lcfs),
#                         overlayfs (containerd's snapshotter; containerd route only), or
#                         baseline (overlayfs on the containerd route, overlay2 on the plugin route)
#   E2E_DRIVER_CONTAINERD, E2E_DRIVER_PLUGIN   the driver of one route (default E2E_DRIVER)
#   E2E_SUITE             sid (default: Docker 28 + containerd 2) or trixie (Docker 26 + containerd 1.7)
#   E2E_CACHE             where fetched engines are kept, default /var/cache/lcfs-e2e
#   LCFS_BIN              an lcfs binary to use instead of building one
#   E2E_LCFS_DIFFER       containerd route: 1 also serves containerd's diff service from lcfs
#                         (layers of a pull extracted inside lcfs), 0 not; default: when the
#                         lcfs binary has --containerd-root. When it also has
#                         --containerd-address, the differ computes the layers of docker commit
#                         and build too (Diff), and the commit step checks its log for it
#   E2E_KEEP=1            keep each run's directory; E2E_LOOP=0 no loop-mounted ext4 for the data
#   E2E_TIMEOUT           seconds allowed to one docker command (default 180)
#   E2E_RESULTS           a file to which each route appends its step timings, one line each:
#                         date, route, driver, seconds, step (tab-separated)
set -euo pipefail
E2E_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/e2e/lib.sh
source "$E2E_ROOT/scripts/e2e/lib.sh"
# shellcheck source=scripts/e2e/setup.sh
source "$E2E_ROOT/scripts/e2e/setup.sh"

if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root (the runs mount file systems and start dockerd)"

E2E_ROUTES=${E2E_ROUTES:-containerd plugin}
E2E_DRIVER=${E2E_DRIVER:-lcfs}
E2E_SUITE=${E2E_SUITE:-sid}
E2E_CACHE=${E2E_CACHE:-/var/cache/lcfs-e2e}
export E2E_CACHE E2E_SUITE

# Prints the driver of ROUTE: E2E_DRIVER_<ROUTE> if set, else E2E_DRIVER ("baseline" meaning
# each route's own driver without lcfs).
driver_of() {
  local route=$1 var
  var=E2E_DRIVER_$(tr '[:lower:]' '[:upper:]' <<< "$route")
  local driver=${!var:-$E2E_DRIVER}
  if [ "$driver" = baseline ]; then
    case $route in
      containerd) driver=overlayfs ;;
      *) driver=overlay2 ;;
    esac
  fi
  echo "$driver"
}

# The setup steps' logs go to a directory of their own, removed when everything passed.
E2E_STEP_DIR=$(mktemp -d /tmp/lcfs-e2e-setup.XXXXXX)
E2E_SUMMARY_FILE=$E2E_STEP_DIR/summary
export E2E_SUMMARY_FILE

# The EXIT trap of the whole run: reports a failing setup step, prints every route's summary line.
finish() {
  local rc=$?
  trap - EXIT
  report_failure "$rc"
  if [ -s "$E2E_SUMMARY_FILE" ]; then
    echo >&3
    echo "==== e2e-docker summary" >&3
    cat "$E2E_SUMMARY_FILE" >&3
  fi
  if [ "$rc" = 0 ]; then rm -rf "$E2E_STEP_DIR"; else say "setup logs in $E2E_STEP_DIR"; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

need_engines=no
need_lcfs=no
for route in $E2E_ROUTES; do
  [ "$route" != containerd ] || need_engines=yes
  [ "$(driver_of "$route")" != lcfs ] || need_lcfs=yes
done

say "== setup"
step "apt-get install what is missing (${E2E_APT_PACKAGES[*]})" install_packages
if [ "$need_engines" = yes ]; then
  step "Docker and containerd of suite $E2E_SUITE into $E2E_CACHE/$E2E_SUITE" fetch_engines "$E2E_SUITE"
  export ENGINE_DIR
fi
if [ "$need_lcfs" = yes ]; then
  # shellcheck source=scripts/setup.sh
  source "$E2E_ROOT/scripts/setup.sh"
  step "cargo build --release -p lcfs-fuse" build_lcfs
  export LCFS
fi

failed=0
for route in $E2E_ROUTES; do
  echo >&3
  bash "$E2E_ROOT/scripts/e2e/route.sh" "$route" "$(driver_of "$route")" || failed=$((failed + 1))
done
[ "$failed" = 0 ] || { say "$failed of $(wc -w <<< "$E2E_ROUTES") routes failed"; exit 1; }
