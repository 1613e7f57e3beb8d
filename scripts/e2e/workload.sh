#!/usr/bin/env bash
# The workload every route runs, one function per step (route.sh times each with `step`): the
# storage driver check, a busybox base image, run/commit/diff, a Dockerfile build, a round trip
# through the local registry, create/remove cycles and, for lcfs, a kill -9 of the lcfs daemon in
# the middle of creating containers. Each function prints what the reader must see on fd 3.
# Sourced by route.sh after lib.sh and services.sh.

# The docker client with a time limit on every call (E2E_TIMEOUT seconds, default 180), so a
# hung daemon fails the step instead of the whole run.
dk() {
  timeout "${E2E_TIMEOUT:-180}" "$DOCKER_CLI" "$@"
}

# `docker info` must report the expected storage driver: prints its "Storage Driver:" line (and
# the driver type on the containerd image store).
check_storage_driver() {
  local info line
  info=$(dk info)
  echo "$info"
  line=$(grep -m1 'Storage Driver:' <<< "$info")
  echo "  $(sed 's/^ *//' <<< "$line")" >&3
  grep -m1 'driver-type:' <<< "$info" | sed 's/^ */  /' >&3 || true
  [ "$(sed 's/.*Storage Driver: *//' <<< "$line")" = "$DOCKER_STORAGE_DRIVER" ] \
    || die "docker info reports \"$line\"; expected Storage Driver: $DOCKER_STORAGE_DRIVER"
}

# Builds the base image base:1: a static busybox in /bin with one symlink per applet, /etc/passwd
# and /etc/group with root, piped as a tar into `docker import`.
import_base_image() {
  local root=$W/base-root busybox
  busybox=$(command -v busybox) || die "no busybox: install busybox-static"
  if ldd "$busybox" >/dev/null 2>&1; then
    die "$busybox is dynamically linked: install busybox-static"
  fi
  rm -rf "$root"
  mkdir -p "$root"/{bin,etc,root,tmp,proc,sys,dev,var}
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  echo 'root:x:0:' > "$root/etc/group"
  tar -C "$root" -c . | dk import --change 'CMD ["/bin/sh"]' - base:1
  echo "  base:1: $(ls "$root/bin" | wc -l) entries in /bin, $(du -sh "$root" | cut -f1)" >&3
}

# Runs a container (no network, never pulling) that writes /data/hello.txt and removes a file of
# the base image (/bin/vi), so that its layer holds an addition and a deletion.
run_writer() {
  dk run --name writer --network none --pull never base:1 \
    sh -c 'mkdir -p /data && echo "hello from lcfs e2e" > /data/hello.txt && rm /bin/vi'
}

# `docker diff writer` must list the added file and the deleted one.
diff_writer() {
  local out
  out=$(dk diff writer)
  echo "$out"
  sed 's/^/  /' <<< "$out" >&3
  grep -qx 'A /data/hello.txt' <<< "$out" || die "docker diff lacks 'A /data/hello.txt'"
  grep -qx 'D /bin/vi' <<< "$out" || die "docker diff lacks 'D /bin/vi'"
}

# The Diff lines of the lcfs daemon's log so far (layers the lcfs differ computed).
lcfs_diffs() {
  grep -c 'lcfs differ: diffed' "$L/lcfs.log" || true
}

# Commits the writer container as committed:1. With the lcfs differ's Diff, the commit's layer
# must have been computed by lcfs (one more Diff line in its log).
commit_writer() {
  local before
  before=$(lcfs_diffs)
  dk commit writer committed:1
  if [ "${LCFS_DIFFS:-no}" = yes ]; then
    local line
    line=$(grep 'lcfs differ: diffed' "$L/lcfs.log" | tail -n1)
    [ "$(lcfs_diffs)" -gt "$before" ] \
      || die "docker commit did not go through the lcfs differ's Diff (no 'lcfs differ: diffed' line in $L/lcfs.log)"
    echo "  computed by lcfs: ${line#*lcfs differ: }" >&3
  fi
}

# Runs the committed image and reads the file back; /bin/vi must be gone there too.
run_committed() {
  local out
  out=$(dk run --rm --network none --pull never committed:1 sh -c 'cat /data/hello.txt; test ! -e /bin/vi && echo vi-gone')
  echo "$out"
  echo "  read back: $(tr '\n' ' ' <<< "$out")" >&3
  [ "$out" = "hello from lcfs e2e
vi-gone" ] || die "the committed image does not hold what the container wrote"
}

# A Dockerfile of five steps on base:1 (ENV, WORKDIR, COPY, two RUNs, one deleting a base file),
# built with the legacy builder (DOCKER_BUILDKIT=0) as built:1.
build_image() {
  local ctx=$W/build
  mkdir -p "$ctx"
  echo "payload copied by the build" > "$ctx/payload.txt"
  cat > "$ctx/Dockerfile" <<'EOF'
FROM base:1
ENV GREETING=hello
WORKDIR /app
COPY payload.txt /app/payload.txt
RUN echo "$GREETING from the build in $(pwd)" > built.txt && rm /bin/ed
RUN cat payload.txt built.txt > all.txt && ls -l /app
EOF
  DOCKER_BUILDKIT=0 dk build --pull=false -t built:1 "$ctx"
}

# Runs built:1 and checks what the build wrote (and removed).
run_built() {
  local out
  out=$(dk run --rm --network none --pull never built:1 sh -c 'cat all.txt; test ! -e /bin/ed && echo ed-gone')
  echo "$out"
  echo "  built:1 says: $(tr '\n' ' ' <<< "$out")" >&3
  [ "$out" = "payload copied by the build
hello from the build in /app
ed-gone" ] || die "built:1 does not hold what its Dockerfile wrote"
}

# Tags built:1 for the local registry, pushes it, removes both tags (the layers above base:1 go),
# pulls it back and runs it.
registry_round_trip() {
  local ref=$REGISTRY/e2e/built:1
  dk tag built:1 "$ref"
  dk push "$ref"
  dk rmi "$ref" built:1
  if dk image inspect "$ref" >/dev/null 2>&1; then die "$ref still present after docker rmi"; fi
  dk pull "$ref"
  local out
  out=$(dk run --rm --network none --pull never "$ref" cat all.txt)
  echo "$out"
  echo "  pulled back and ran: $(head -n1 <<< "$out")" >&3
  grep -qx 'hello from the build in /app' <<< "$out" || die "the pulled image does not hold the build's files"
  if [ "${LCFS_DIFFER:-no}" = yes ]; then
    echo "  the lcfs differ applied $(grep -c 'lcfs differ: applied' "$L/lcfs.log" || true) layers in the engine so far (import, build, commit, pull; its log)" >&3
  fi
  if [ "${LCFS_DIFFS:-no}" = yes ]; then
    echo "  the lcfs differ computed $(lcfs_diffs) layers in the engine so far (commit, build; its log)" >&3
  fi
}

# N cycles (default 50) of `docker create` + `docker rm` of base:1; prints the time per cycle.
create_remove_cycles() {
  local n=${1:-50} i id start
  start=$(now)
  for ((i = 1; i <= n; i++)); do
    id=$(dk create --network none --pull never base:1 true)
    dk rm "$id" >/dev/null
  done
  local secs
  secs=$(elapsed "$start" "$(now)")
  echo "  $n create+rm cycles in $secs s ($(awk -v s="$secs" -v n="$n" 'BEGIN { printf "%.0f", 1000 * s / n }') ms each)" >&3
}

# ---- the lcfs daemon killed in the middle of a workload ------------------------------------

# The containers created by the creators of the crash test so far (their ids in their logs).
crash_created() {
  cat "$L"/crash-creates-*.log 2>/dev/null | grep -cE '^[0-9a-f]{64}$' || true
}

# True when the creators of the crash test have created at least N containers.
crash_created_at_least() {
  [ "$(crash_created)" -ge "$1" ]
}

# Starts CRASH_CREATORS (default 3) loops in the background (CREATOR_PIDS), each creating
# containers of committed:1 labelled lcfs-e2e=crash until $W/crash-stop exists (at most 30
# each); kills the lcfs daemon with SIGKILL once 5 exist, so that it dies with creations in
# flight; stops the loops from starting more; detaches the dead FUSE mount and its bind mounts
# (umount -l); checks the image with `lcfs fsck` while no daemon serves it.
kill_lcfs_during_creates() {
  local i
  rm -f "$W/crash-stop"
  CREATOR_PIDS=()
  for ((i = 1; i <= ${CRASH_CREATORS:-3}; i++)); do
    (
      for ((n = 1; n <= 30; n++)); do
        [ ! -e "$W/crash-stop" ] || break
        timeout 90 "$DOCKER_CLI" create --label lcfs-e2e=crash --network none --pull never committed:1 true || true
      done
    ) > "$L/crash-creates-$i.log" 2>&1 &
    CREATOR_PIDS+=($!)
  done
  wait_for 120 "5 containers created before the kill" crash_created_at_least 5 \
    || die "the creators did not create 5 containers in 120 s"
  kill -KILL "$LCFS_PID"
  touch "$W/crash-stop"
  echo "  kill -9 of the lcfs daemon (pid $LCFS_PID) after $(crash_created) creates, ${#CREATOR_PIDS[@]} creators running" >&3
  wait "$LCFS_PID" 2>/dev/null || true
  echo "==== e2e: lcfs daemon killed with SIGKILL ($(date -Is))" >> "$L/lcfs.log"
  LCFS_PID=
  detach_lcfs_mounts
  local out rc=0
  out=$("$LCFS" fsck "$LCFS_IMG" 2>&1) || rc=$?
  echo "$out"
  echo "  fsck of the killed daemon's image: $(tail -n1 <<< "$out") (exit $rc)" >&3
  [ "$rc" = 0 ] || die "lcfs fsck after the kill found issues (exit $rc)"
}

# Stops the creators of the crash test if they still run (a failure cut the test short): touches
# the stop file, then stops each loop by PID (stop_pid).
stop_creators() {
  [ -n "${W:-}" ] && [ ${#CREATOR_PIDS[@]} -gt 0 ] || return 0
  touch "$W/crash-stop"
  local pid
  for pid in "${CREATOR_PIDS[@]}"; do
    stop_pid "a crash-test creator" "$pid" 30
  done
  CREATOR_PIDS=()
}
CREATOR_PIDS=()

# Starts the lcfs daemon again on the same image and sockets while the creations that were in
# flight may still be retrying, waits for the creators to end, and waits until the runtime
# reaches lcfs again (containerd's proxy plugin and dockerd's plugin client dial again by
# themselves).
restart_lcfs() {
  start_lcfs
  local pid
  for pid in "${CREATOR_PIDS[@]}"; do
    wait "$pid" || true
  done
  cat "$L"/crash-creates-*.log
  local errors
  errors=$(cat "$L"/crash-creates-*.log | grep -ciE 'error' || true)
  echo "  the creators ended: $(crash_created) containers created in all, $errors creates failed" >&3
  cat "$L"/crash-creates-*.log | grep -iE 'error' | sed 's/[0-9a-f]\{64\}/ID/g' | sort | uniq -c | sort -rn | head -n 3 \
    | cut -c1-300 | sed 's/^/  /' >&3 || true
  if [ "$ROUTE" = containerd ]; then
    wait_for 60 "containerd to reach lcfs again" \
      ctr --address "$CONTAINERD_SOCK" -n moby snapshots --snapshotter lcfs ls \
      || die "containerd cannot list lcfs's snapshots after the restart"
  fi
  wait_for 60 "docker to reach lcfs again" dk image inspect committed:1 \
    || die "docker cannot inspect committed:1 after the restart"
}

# After the restart: the committed image still runs and reads back its file, built:1 and the
# pulled image still run, the containers left by the interrupted creations can be removed, and
# creating and removing works again.
check_after_restart() {
  run_committed
  local out
  out=$(dk run --rm --network none --pull never "$REGISTRY/e2e/built:1" cat all.txt)
  grep -qx 'hello from the build in /app' <<< "$out" || die "the pulled image no longer holds its files"
  echo "  $REGISTRY/e2e/built:1 still runs" >&3
  local ids
  ids=$(dk ps -aq --filter label=lcfs-e2e=crash)
  echo "removing $(wc -w <<< "$ids") containers of the interrupted creations"
  # shellcheck disable=SC2086 # one argument per id
  [ -z "$ids" ] || dk rm -f $ids
  echo "  removed $(wc -w <<< "$ids") containers left by the interrupted creations" >&3
  create_remove_cycles 10
}

# The end of an lcfs route: stops dockerd and containerd, unmounts lcfs cleanly (`lcfs umount`)
# and runs `lcfs fsck` on the image, which must be clean.
shutdown_and_fsck() {
  stop_pid dockerd "$DOCKERD_PID" 30
  DOCKERD_PID=
  if [ -n "${CONTAINERD_PID:-}" ]; then
    stop_pid containerd "$CONTAINERD_PID" 20
    CONTAINERD_PID=
  fi
  # dockerd may leave mounts under its data-root: they must go before lcfs unmounts.
  unmount_under "$W/docker"
  stop_lcfs
  local out rc=0
  out=$("$LCFS" fsck "$LCFS_IMG" 2>&1) || rc=$?
  echo "$out"
  echo "  $(tail -n1 <<< "$out") (exit $rc)" >&3
  [ "$rc" = 0 ] || die "lcfs fsck after the final unmount found issues (exit $rc)"
}
