#!/usr/bin/env bash
# Runs a command on a busy machine: 4 busy loops on the CPU and 2 loops writing
# 256 MiB with fsync to the disk run beside it, the load under which the
# end-to-end tests once failed (slow PostgreSQL commits, batches in flight past
# the claim idle time). The load is stopped when the command ends, whatever
# happened (also on Ctrl-C), and the script exits with the command's status.
#
#   dev/load.sh                                   # dev/test.sh under load
#   dev/load.sh dev/test.sh -p flowgate-cli --test e2e
#   FLOWGATE_LOAD_CPU=8 FLOWGATE_LOAD_DISK=2 dev/load.sh COMMAND [ARGS...]
set -uo pipefail
cd "$(dirname "$0")/.."

cpu=${FLOWGATE_LOAD_CPU:-4}
disk=${FLOWGATE_LOAD_DISK:-2}
# Beside the build's target/ (same disk as the tests' servers, not tmpfs).
tmp=$(mktemp -d "${FLOWGATE_LOAD_DIR:-${TMPDIR:-/tmp}}/flowgate-load.XXXXXX")
pids=()

log() { printf 'dev/load.sh: %s\n' "$*" >&2; }

stop_load() {
  local pid
  for pid in "${pids[@]}"; do
    # Each loop runs in its own process group (set -m below): end the loop and
    # the dd it is waiting for.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null
  done
  pids=()
  rm -rf "$tmp"
}
cmd_pid=""
# On Ctrl-C or SIGTERM: pass it on to the command, wait for it, stop the load.
forward() {
  if [ -n "$cmd_pid" ]; then
    kill "-$1" "$cmd_pid" 2>/dev/null
    wait "$cmd_pid" 2>/dev/null
  fi
  exit "$2"
}
trap stop_load EXIT
trap 'forward INT 130' INT
trap 'forward TERM 143' TERM

if [ $# -eq 0 ]; then
  set -- dev/test.sh
fi

set -m # background jobs get their own process group, so they can be ended whole
for i in $(seq 1 "$cpu"); do
  (while :; do :; done) &
  pids+=($!)
done
for i in $(seq 1 "$disk"); do
  # The loop reaps its dd when it is stopped, so that no dd outlives it.
  (
    dd_pid=""
    trap '[ -n "$dd_pid" ] && kill -TERM "$dd_pid" 2>/dev/null; [ -n "$dd_pid" ] && wait "$dd_pid"; exit 0' TERM
    while :; do
      dd if=/dev/zero of="$tmp/load-$i" bs=1M count=256 conv=fsync status=none &
      dd_pid=$!
      wait "$dd_pid"
      dd_pid=""
    done
  ) &
  pids+=($!)
done
set +m
log "$cpu busy loops and $disk dd loops (pids ${pids[*]}) beside: $*"

# In the background, so that a signal to this script is handled (and passed on)
# at once rather than after the command.
"$@" &
cmd_pid=$!
wait "$cmd_pid"
status=$?
cmd_pid=""
log "command exited with $status; stopping the load"
exit "$status"
