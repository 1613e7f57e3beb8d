#!/usr/bin/env bash
# Shared helpers of the end-to-end scripts: messages, timed steps that fail loudly with the
# daemons' log tails, a cleanup stack run in reverse order on exit, stopping processes by PID
# and unmounting what a run left under its directory. Sourced by run.sh and route.sh.

# A failing command inside $(...) fails the script too.
shopt -s inherit_errexit

# The console: steps write their own output to a log and print to fd 3 what the reader must see.
exec 3>&1

# Logs whose tails a failure prints, as "name=path" (filled in as daemons start).
E2E_LOGS=()
# The cleanup stack: shell commands, run last-in first-out by run_cleanups.
E2E_CLEANUPS=()
# Number of steps run so far, and the directory of their logs (set by the caller).
E2E_STEP_NO=0
E2E_STEP_DIR=${E2E_STEP_DIR:-/tmp}

# Prints a message on the console, prefixed so that it stands out from command output.
say() {
  echo "e2e: $*" >&3
}

# Prints its input both to stdout (the step's log) and on the console (fd 3).
show() {
  local line
  while IFS= read -r line; do
    echo "$line"
    echo "  $line" >&3
  done
}

# Prints an error and exits 1; the EXIT trap (on_exit) then prints the daemons' log tails.
die() {
  echo "e2e: ERROR: $*" >&3
  echo "e2e: ERROR: $*" >&2
  exit 1
}

# Prints the last lines of every log registered in E2E_LOGS (30 each, or $E2E_TAIL).
show_log_tails() {
  local entry name path
  for entry in "${E2E_LOGS[@]}"; do
    name=${entry%%=*}
    path=${entry#*=}
    [ -s "$path" ] || continue
    echo "---- last lines of the $name log ($path) ----" >&3
    tail -n "${E2E_TAIL:-30}" "$path" >&3
  done
}

# Registers a daemon log for show_log_tails: add_log NAME PATH.
add_log() {
  E2E_LOGS+=("$1=$2")
}

# Runs one timed step in this shell: step "what it does" COMMAND [ARGS...]. The command's stdout
# and stderr go to the step's own log; it may print results for the reader on fd 3. On success
# prints the time taken; a failing command inside it exits the script (errexit), and the EXIT
# trap (report_failure) prints the step, its log's tail and the daemons' log tails.
step() {
  local title=$1
  shift
  E2E_STEP_NO=$((E2E_STEP_NO + 1))
  E2E_STEP_LOG=$(printf '%s/step-%02d.log' "$E2E_STEP_DIR" "$E2E_STEP_NO")
  E2E_STEP=$title
  E2E_STEP_START=$(now)
  echo "e2e: [$E2E_STEP_NO] $title" >&3
  "$@" >"$E2E_STEP_LOG" 2>&1
  # A check the caller wants after every step (route.sh: the plugin socket is still ours).
  if declare -F after_step >/dev/null; then after_step >>"$E2E_STEP_LOG" 2>&1; fi
  local secs
  secs=$(elapsed "$E2E_STEP_START" "$(now)")
  E2E_TIMINGS+=("$(printf '%7.2f s  %s' "$secs" "$title")")
  echo "e2e: [$E2E_STEP_NO] ok, $secs s" >&3
  E2E_STEP=
}
E2E_TIMINGS=()
E2E_STEP=
E2E_STEP_LOG=

# Runs a step that may fail without ending the script: try_step "what it does" COMMAND [ARGS...];
# its exit status goes to TRY_RC and try_step returns 0. The step runs in a subshell with errexit
# on, so variables it sets are lost. (Call it as a plain command: as an `if` or `||` condition,
# bash would turn errexit off inside the step, even a `set -e` there.)
try_step() {
  set +e
  (set -e; step "$@")
  TRY_RC=$?
  set -e
  E2E_STEP_NO=$((E2E_STEP_NO + 1))
  [ "$TRY_RC" = 0 ] || echo "e2e: [$E2E_STEP_NO] FAILED (exit status $TRY_RC): $1; its log: $(printf '%s/step-%02d.log' "$E2E_STEP_DIR" "$E2E_STEP_NO")" >&3
}
TRY_RC=0

# On a failing exit: names the step that failed (if any) with its time and its log's tail, then
# the tails of the daemons' logs. Called first by the EXIT trap with the exit status.
report_failure() {
  local rc=$1
  [ "$rc" != 0 ] || return 0
  if [ -n "$E2E_STEP" ]; then
    echo "e2e: [$E2E_STEP_NO] FAILED after $(elapsed "$E2E_STEP_START" "$(now)") s (exit status $rc): $E2E_STEP" >&3
    echo "---- last lines of the step's output ($E2E_STEP_LOG) ----" >&3
    tail -n "${E2E_TAIL:-40}" "$E2E_STEP_LOG" >&3
  fi
  show_log_tails
}

# Pushes a cleanup command (a string, evaluated at exit) on the cleanup stack.
on_cleanup() {
  E2E_CLEANUPS+=("$1")
}

# Runs the cleanup stack last-in first-out; a failing cleanup is reported and the rest still run.
run_cleanups() {
  local i
  for ((i = ${#E2E_CLEANUPS[@]} - 1; i >= 0; i--)); do
    eval "${E2E_CLEANUPS[$i]}" || echo "e2e: cleanup \"${E2E_CLEANUPS[$i]}\" failed" >&3
  done
  E2E_CLEANUPS=()
}

# Seconds since the epoch with fractions (for timings).
now() {
  date +%s.%N
}

# Prints B - A in seconds with two decimals: elapsed A B.
elapsed() {
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'
}

# Stops one process this run started: stop_pid NAME PID [SECONDS]. SIGTERM, then SIGKILL after
# SECONDS (default 20), and the process's own children (by parent PID) if it had to be killed.
# Does nothing when PID is empty or already gone.
stop_pid() {
  local name=$1 pid=$2 secs=${3:-20}
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  local children
  children=$(ps -o pid= --ppid "$pid" 2>/dev/null | tr '\n' ' ' || true)
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((secs * 10)) ]; do
    # A child of this shell stays a zombie until waited for: reap it if it has exited.
    if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then break; fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
    say "$name (pid $pid, state $(ps -o stat= -p "$pid")) did not stop in $secs s after SIGTERM: SIGKILL to it and its children $children"
    # shellcheck disable=SC2086 # one argument per child
    kill -KILL "$pid" $children 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Waits until a command succeeds: wait_for SECONDS WHAT COMMAND [ARGS...]; fails (with WHAT in
# the message) when the time is up.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "timed out after $secs s waiting for $what"; return 1; }
    sleep 0.2
  done
}

# Lists the mount points at or under DIR, deepest first (from /proc/self/mountinfo).
mounts_under() {
  local dir=$1
  awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo \
    | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}

# Unmounts everything at or under DIR, deepest first; a busy or dead mount is detached lazily.
unmount_under() {
  local dir=$1 m
  for m in $(mounts_under "$dir"); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "e2e: cannot unmount $m" >&3
  done
}

# Lists the mount points whose source is SOURCE (e.g. "lcfs:/path/img"), deepest first: a FUSE
# mount and every bind mount taken from it.
mounts_of_source() {
  local source=$1
  # mountinfo: fields after " - " are fstype, source, options.
  awk -v s="$source" '{ for (i = 7; i <= NF; i++) if ($i == "-") break; if ($(i + 2) == s) print $5 }' \
    /proc/self/mountinfo | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-
}
