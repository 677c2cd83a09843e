#!/usr/bin/env bash
# Stop the one-node cluster started by up.sh: the daemons named by the pid files under
# $SLURM_DIR (same default as up.sh), newest first. Nothing else is touched; the state dir
# stays (remove it yourself, or pass --purge). Safe to run when nothing is up.
set -uo pipefail
SLURM_DIR=${SLURM_DIR:-${TMPDIR:-/tmp}/attmask-slurm-$(id -u)}

stop() {  # stop <pid file>: SIGTERM, wait up to 10 s, then SIGKILL
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    echo "stopped $(basename "$file" .pid) (pid $pid)"
  fi
  rm -f "$file"
}

for name in slurmd slurmctld slurmdbd mysql; do
  stop "$SLURM_DIR/$name.pid"
done
# munged only if up.sh started it (a system munged stays up)
if [ -s "$SLURM_DIR/munged.started" ]; then
  stop "$(cat "$SLURM_DIR/munged.started")"
  rm -f "$SLURM_DIR/munged.started"
fi
if [ "${1:-}" = "--purge" ]; then
  rm -rf "$SLURM_DIR" && echo "removed $SLURM_DIR"
fi
