#!/usr/bin/env bash
# Starting and stopping the daemons of one route, each private to the run's directory $W: the
# lcfs daemon (its FUSE mount plus the snapshotter or graph-driver socket), a containerd with its
# own configuration, a dockerd with its own data-root, exec-root, socket and pidfile, and a local
# registry. Every start registers its stop on the cleanup stack (lib.sh), so the EXIT trap stops
# them in reverse order, by PID. Sourced by route.sh after lib.sh, and by the Docker benchmark
# (scripts/bench/docker.sh, docker-one.sh).

# Cleanup commands are strings evaluated at exit, so that they see the PIDs of that moment.
# shellcheck disable=SC2016

# Where Docker's graph-driver plugins live: dockerd finds a plugin NAME at /run/docker/plugins/NAME.sock.
PLUGIN_DIR=/run/docker/plugins
PLUGIN_SOCK=$PLUGIN_DIR/lcfs.sock

# ---- lcfs ----------------------------------------------------------------------------------

# Formats the run's lcfs image: $LCFS mkfs --size 8G $W/lcfs.img.
mkfs_lcfs() {
  LCFS_IMG=$W/lcfs.img
  LCFS_MNT=$W/lcfs
  mkdir -p "$LCFS_MNT"
  "$LCFS" mkfs --size "${E2E_LCFS_SIZE:-8G}" "$LCFS_IMG"
  add_log lcfs "$L/lcfs.log"
}

# Whether the containerd route also uses lcfs's differ (containerd's diff service on the same
# socket, extracting pulled layers inside lcfs): E2E_LCFS_DIFFER=1 or 0; by default (auto) when
# the lcfs binary has `--containerd-root`. Prints yes or no.
use_lcfs_differ() {
  case ${E2E_LCFS_DIFFER:-auto} in
    1) echo yes ;;
    0) echo no ;;
    *)
      if lcfs_has_option --containerd-root; then echo yes; else echo no; fi
      ;;
  esac
}

# Whether the lcfs binary has OPTION (its usage names it).
lcfs_has_option() {
  local usage
  usage=$("$LCFS" help 2>&1 || true)
  grep -q -- "$1" <<< "$usage"
}

# Whether the lcfs differ also computes layers (Diff: docker commit and build), writing them
# through containerd's content service: with the differ, when the lcfs binary has
# `--containerd-address`. Prints yes or no.
lcfs_differ_diffs() {
  if [ "$LCFS_DIFFER" = yes ] && lcfs_has_option --containerd-address; then echo yes; else echo no; fi
}

# The socket option of `lcfs mount` for this route: --snapshotter (containerd; with the differ,
# --containerd-root naming the root of the content store it reads blobs from, and
# --containerd-address the containerd socket whose content service takes the layers it
# computes) or --graphdriver.
lcfs_service_args() {
  case $ROUTE in
    containerd)
      if [ "$LCFS_DIFFER" = yes ] && [ "$(lcfs_differ_diffs)" = yes ]; then
        echo "--snapshotter $W/lcfs-snapshotter.sock --containerd-root $W/containerd/root --containerd-address $W/containerd/containerd.sock"
      elif [ "$LCFS_DIFFER" = yes ]; then
        echo "--snapshotter $W/lcfs-snapshotter.sock --containerd-root $W/containerd/root"
      else
        echo "--snapshotter $W/lcfs-snapshotter.sock"
      fi
      ;;
    plugin) echo "--graphdriver $PLUGIN_SOCK" ;;
  esac
}

# The path of the socket lcfs serves the runtime on (see lcfs_service_args).
lcfs_service_sock() {
  case $ROUTE in
    containerd) echo "$W/lcfs-snapshotter.sock" ;;
    plugin) echo "$PLUGIN_SOCK" ;;
  esac
}

# True when a process listens on the unix socket PATH.
sock_listening() {
  # (grep -q in a pipeline would end it early: under pipefail, ss's SIGPIPE would fail it.)
  local listening
  listening=$(ss -xlnH 2>/dev/null | awk '{ print $5 }')
  grep -qxF "$1" <<< "$listening"
}

# Prints the PIDs and commands of the processes that listen on the unix socket PATH.
sock_listeners() {
  local pid
  for pid in $(ss -xlpnH 2>/dev/null | awk -v p="$1" '$5 == p' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    echo "pid $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)"
  done
}

# True when the lcfs mount is up on $LCFS_MNT and its service socket exists.
lcfs_ready() {
  local mounts
  mounts=$(mounts_of_source "lcfs:$(readlink -f "$LCFS_IMG")")
  grep -qxF "$LCFS_MNT" <<< "$mounts" && [ -S "$(lcfs_service_sock)" ]
}

# Starts `lcfs mount IMG MNT --foreground` with the route's service socket, in the background as
# a child of this shell (LCFS_PID), its output appended to $L/lcfs.log; returns once the mount
# and the socket are up. Fails with the log's tail if the daemon exits first.
start_lcfs() {
  local sock
  sock=$(lcfs_service_sock)
  if [ "$ROUTE" = plugin ]; then
    mkdir -p "$PLUGIN_DIR"
    ! sock_listening "$sock" || die "something already serves $sock (another lcfs graph-driver plugin?): $(sock_listeners "$sock")"
  fi
  rm -f "$sock"
  echo "==== e2e: lcfs mount $LCFS_IMG $LCFS_MNT --foreground $(lcfs_service_args) ($(date -Is))" >> "$L/lcfs.log"
  # shellcheck disable=SC2046 # the service arguments are several words
  "$LCFS" mount "$LCFS_IMG" "$LCFS_MNT" --foreground $(lcfs_service_args) >> "$L/lcfs.log" 2>&1 &
  LCFS_PID=$!
  echo "lcfs daemon pid $LCFS_PID"
  local deadline=$((SECONDS + 30))
  until lcfs_ready; do
    kill -0 "$LCFS_PID" 2>/dev/null || { wait "$LCFS_PID" || true; die "the lcfs daemon exited before serving $sock (log: $L/lcfs.log)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "the lcfs daemon did not serve $LCFS_MNT and $sock within 30 s"
    sleep 0.1
  done
  # The plugin socket's path is shared by the machine: make sure this run's daemon holds it.
  check_plugin_owner
}

# Fails when the plugin socket is no longer served by this run's lcfs daemon (another run took
# the shared path /run/docker/plugins/lcfs.sock: dockerd would be talking to another daemon).
check_plugin_owner() {
  [ "$ROUTE" = plugin ] && [ -n "${LCFS_PID:-}" ] || return 0
  local who
  who=$(sock_listeners "$PLUGIN_SOCK")
  grep -q "^pid $LCFS_PID:" <<< "$who" \
    || die "$PLUGIN_SOCK is no longer served by this run's lcfs daemon (pid $LCFS_PID) but by: $(sock_listeners "$PLUGIN_SOCK")"
}

# Stops the lcfs daemon cleanly: `lcfs umount` (a checkpoint, the mount gone, the daemon exits);
# if that fails, SIGTERM/SIGKILL by PID; then detaches any mount of the image still left (a dead
# daemon's) and removes a plugin socket it left behind.
stop_lcfs() {
  [ -n "${LCFS_IMG:-}" ] || return 0
  if [ -n "${LCFS_PID:-}" ] && kill -0 "$LCFS_PID" 2>/dev/null; then
    timeout 60 "$LCFS" umount "$LCFS_MNT" || say "lcfs umount $LCFS_MNT failed"
    stop_pid lcfs "$LCFS_PID" 20
  fi
  LCFS_PID=
  detach_lcfs_mounts
  if [ "$ROUTE" = plugin ] && [ -S "$PLUGIN_SOCK" ] && ! sock_listening "$PLUGIN_SOCK"; then
    rm -f "$PLUGIN_SOCK"
  fi
}

# Detaches (umount -l) every mount whose source is the run's lcfs image: the FUSE mount of a
# dead daemon (fusermount3 -u fails on a dead connection) and the bind mounts taken from it.
detach_lcfs_mounts() {
  local m
  for m in $(mounts_of_source "lcfs:$(readlink -f "$LCFS_IMG")"); do
    echo "detaching $m"
    umount -l "$m" || say "cannot detach $m"
  done
}

# ---- the engine ----------------------------------------------------------------------------

# Sets the engine of $ROUTE (DOCKERD, DOCKER_CLI, PATH, ENGINE_NAME), the storage driver dockerd is
# given (DOCKER_STORAGE_DRIVER=$DRIVER) and, for lcfs, whether its differ is used (LCFS_DIFFER).
# containerd: the fetched Docker 28 (26) in ENGINE_DIR on its own containerd; plugin: bookworm's
# Docker 20.10, which starts bookworm's containerd itself.
# shellcheck disable=SC2034 # ENGINE_NAME is for the callers (route.sh, bench/docker-one.sh)
set_engine() {
  DOCKER_STORAGE_DRIVER=$DRIVER
  case $ROUTE in
    containerd)
      [ -x "${ENGINE_DIR:-}/usr/sbin/dockerd" ] || die "ENGINE_DIR does not hold a dockerd (run.sh fetches it)"
      export PATH=$ENGINE_DIR/usr/bin:$ENGINE_DIR/usr/sbin:/usr/sbin:/usr/bin:/sbin:/bin
      DOCKERD=$ENGINE_DIR/usr/sbin/dockerd
      DOCKER_CLI=$ENGINE_DIR/usr/bin/docker
      [ -x "$DOCKER_CLI" ] || DOCKER_CLI=$(command -v docker)
      ENGINE_NAME="Docker $("$DOCKERD" --version | sed 's/^Docker version \([^,+]*\).*/\1/') + containerd $(containerd --version | awk '{ print $3 }' | sed 's/[~+].*//')"
      ;;
    plugin)
      # bookworm's Docker 20.10, which starts bookworm's containerd found on this PATH.
      export PATH=/usr/sbin:/usr/bin:/sbin:/bin
      DOCKERD=/usr/sbin/dockerd
      DOCKER_CLI=/usr/bin/docker
      ENGINE_NAME="Docker $("$DOCKERD" --version | sed 's/^Docker version \([^,+]*\).*/\1/') + containerd $(containerd --version | awk '{ print $3 }' | sed 's/[~+].*//')"
      ;;
  esac
  LCFS_DIFFER=no
  if [ "$DRIVER" = lcfs ]; then
    [ -x "${LCFS:-}" ] || die "LCFS does not name the lcfs binary (run.sh builds it)"
    [ "$ROUTE" != containerd ] || LCFS_DIFFER=$(use_lcfs_differ)
  fi
  # Whether that differ also computes Diff (docker commit, build): the binary has
  # --containerd-address.
  LCFS_DIFFS=no
  [ "$DRIVER" != lcfs ] || LCFS_DIFFS=$(lcfs_differ_diffs)
}

# What exists before a run in the shared places Docker writes to, so that teardown removes only
# what the run created there: /etc/docker/key.json (Docker 20.10) and /run/docker/plugins,
# /run/docker, /run/containerd (whose subdirectories the shims make), /etc/docker (directories,
# removed only when left empty, deepest first).
SHARED_DIRS=(/run/docker/plugins /run/docker /run/containerd/s /run/containerd/fifo
  /run/containerd/runc/moby /run/containerd/runc /run/containerd /etc/docker)
note_shared_state() {
  KEY_JSON_EXISTED=no
  [ ! -e /etc/docker/key.json ] || KEY_JSON_EXISTED=yes
  NEW_DIRS=()
  local d
  for d in "${SHARED_DIRS[@]}"; do
    [ -e "$d" ] || NEW_DIRS+=("$d")
  done
}

# Puts those shared places back as they were found (see note_shared_state).
restore_shared_state() {
  if [ "$KEY_JSON_EXISTED" = no ] && [ -e /etc/docker/key.json ]; then
    rm -f /etc/docker/key.json
  fi
  local d
  for d in "${NEW_DIRS[@]}"; do
    [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || true
  done
}

# ---- containerd ----------------------------------------------------------------------------

# Writes $W/containerd/config.toml: its own root, state and gRPC socket, CRI disabled, and for
# the lcfs driver a proxy snapshotter plugin "lcfs" at the lcfs daemon's socket.
write_containerd_config() {
  local c=$W/containerd
  mkdir -p "$c/root" "$c/state"
  CONTAINERD_SOCK=$c/containerd.sock
  cat > "$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CONTAINERD_SOCK"
EOF
  if [ "$DRIVER" = lcfs ]; then
    cat >> "$c/config.toml" <<EOF

[proxy_plugins.lcfs]
  type = "snapshot"
  address = "$W/lcfs-snapshotter.sock"
EOF
  fi
  if [ "$DRIVER" = lcfs ] && [ "$LCFS_DIFFER" = yes ]; then
    cat >> "$c/config.toml" <<EOF

[proxy_plugins.lcfs-diff]
  type = "diff"
  address = "$W/lcfs-snapshotter.sock"

[plugins."io.containerd.service.v1.diff-service"]
  default = ["lcfs-diff", "walking"]
EOF
  fi
}

# Starts containerd (the fetched one, first on PATH) with that configuration, as a child of this
# shell (CONTAINERD_PID); returns once it answers. With lcfs, checks that it lists the lcfs
# snapshotter as ok.
start_containerd() {
  write_containerd_config
  add_log containerd "$L/containerd.log"
  containerd --config "$W/containerd/config.toml" > "$L/containerd.log" 2>&1 &
  CONTAINERD_PID=$!
  on_cleanup 'stop_pid containerd "$CONTAINERD_PID" 20; CONTAINERD_PID='
  echo "containerd pid $CONTAINERD_PID: $(containerd --version)"
  local deadline=$((SECONDS + 30))
  until ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; do
    kill -0 "$CONTAINERD_PID" 2>/dev/null || die "containerd exited at start (log: $L/containerd.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "containerd did not answer on $CONTAINERD_SOCK within 30 s"
    sleep 0.1
  done
  local plugins
  plugins=$(ctr --address "$CONTAINERD_SOCK" plugins ls)
  grep -E 'snapshotter|differ' <<< "$plugins" | show
  if [ "$DRIVER" = lcfs ]; then
    grep -qE 'io\.containerd\.snapshotter\.v1 +lcfs +[^ ]+ +ok' <<< "$plugins" \
      || die "containerd does not list the lcfs snapshotter as ok"
  fi
  if [ "$DRIVER" = lcfs ] && [ "$LCFS_DIFFER" = yes ]; then
    grep -qE 'io\.containerd\.differ\.v1 +lcfs-diff +[^ ]+ +ok' <<< "$plugins" \
      || die "containerd does not list the lcfs differ as ok"
  fi
}

# ---- dockerd -------------------------------------------------------------------------------

# Starts a private dockerd as a child of this shell (DOCKERD_PID): data-root, exec-root, socket
# and pidfile under $W/docker, networking off, its own --config-file (so /etc/docker/daemon.json
# is not read), the route's storage driver. containerd route: Docker 28 on our containerd, with
# the containerd image store for lcfs and overlayfs (dockerd's graph drivers otherwise: overlay2,
# fuse-overlayfs, vfs); plugin route: Docker 20.10 managing its own containerd, --experimental
# for the lcfs plugin. Returns once the daemon answers.
start_dockerd() {
  local d=$W/docker
  mkdir -p "$d/data" "$d/exec" "$W/docker-config"
  DOCKER_SOCK=$d/docker.sock
  export DOCKER_HOST=unix://$DOCKER_SOCK
  export DOCKER_CONFIG=$W/docker-config
  local args=(--data-root "$d/data" --exec-root "$d/exec" -H "unix://$DOCKER_SOCK" --pidfile "$d/docker.pid"
    --bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false
    --config-file "$d/daemon.json" --storage-driver "$DOCKER_STORAGE_DRIVER")
  case $ROUTE in
    containerd)
      args+=(--containerd "$CONTAINERD_SOCK")
      # lcfs and overlayfs are containerd snapshotters (the containerd image store); overlay2,
      # fuse-overlayfs and vfs are dockerd's own graph drivers.
      case $DRIVER in
        lcfs | overlayfs) echo '{"features":{"containerd-snapshotter":true}}' > "$d/daemon.json" ;;
        *) echo '{"features":{"containerd-snapshotter":false}}' > "$d/daemon.json" ;;
      esac
      ;;
    plugin)
      echo '{}' > "$d/daemon.json"
      [ "$DRIVER" != lcfs ] || args+=(--experimental)
      ;;
  esac
  add_log dockerd "$L/dockerd.log"
  echo "$DOCKERD ${args[*]}"
  "$DOCKERD" "${args[@]}" > "$L/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  on_cleanup 'stop_pid dockerd "$DOCKERD_PID" 30; DOCKERD_PID='
  echo "dockerd pid $DOCKERD_PID"
  local deadline=$((SECONDS + 60))
  until "$DOCKER_CLI" version >/dev/null 2>&1; do
    kill -0 "$DOCKERD_PID" 2>/dev/null || die "dockerd exited at start (log: $L/dockerd.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "dockerd did not answer on $DOCKER_SOCK within 60 s"
    sleep 0.2
  done
  "$DOCKER_CLI" version --format 'client {{.Client.Version}}, server {{.Server.Version}}' | show
}

# ---- registry ------------------------------------------------------------------------------

# Starts `docker-registry serve` on 127.0.0.1:5000 (or the next free port up to 5099, when
# another run holds 5000) with its storage under $W/registry; sets REGISTRY to HOST:PORT.
start_registry() {
  local r=$W/registry port=${E2E_REGISTRY_PORT:-5000}
  mkdir -p "$r/data"
  while (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    port=$((port + 1))
    [ "$port" -lt 5100 ] || die "no free port between 5000 and 5099 for the registry"
  done
  REGISTRY=127.0.0.1:$port
  cat > "$r/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $r/data
  delete:
    enabled: true
http:
  addr: $REGISTRY
EOF
  add_log registry "$L/registry.log"
  docker-registry serve "$r/config.yml" > "$L/registry.log" 2>&1 &
  REGISTRY_PID=$!
  on_cleanup 'stop_pid registry "$REGISTRY_PID" 10; REGISTRY_PID='
  wait_for 20 "the registry on $REGISTRY" bash -c "exec 9<>/dev/tcp/127.0.0.1/$port" \
    || die "the registry did not listen on $REGISTRY"
  echo "registry pid $REGISTRY_PID on $REGISTRY" | show
}
