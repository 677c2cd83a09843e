#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine, for the launcher tests and for trying
# `python -m launchers.slurm` without a real cluster.
#
#   sudo launchers/local_slurm/up.sh          # prints: export SLURM_CONF=<state dir>/slurm.conf
#   eval "$(sudo launchers/local_slurm/up.sh | tail -n 1)"
#
# Daemons: munged (authentication), mariadbd + slurmdbd (accounting: without it `sacct`
# fails and submitit reads every job state as UNKNOWN), slurmctld (controller), slurmd (the
# one compute node, named localhost). Every file they write lives under $SLURM_DIR
# (default: /tmp/attmask-slurm-$UID); down.sh stops them by their pid files.
# Running it again while the cluster is up changes nothing (idempotent).
#
# Needs root and the Debian packages: slurm-wlm munge slurmdbd mariadb-server.
# Environment knobs: SLURM_DIR, SLURM_WITH_DBD (1|0, default 1), SLURM_DB_PORT (13306),
# SLURM_CRED_EXPIRE (seconds a requeued job waits before it may start again; SLURM's own
# default is 120, we use 30 so that requeue tests stay short).
set -euo pipefail

SLURM_DIR=${SLURM_DIR:-${TMPDIR:-/tmp}/attmask-slurm-$(id -u)}
SLURM_WITH_DBD=${SLURM_WITH_DBD:-1}
SLURM_DB_PORT=${SLURM_DB_PORT:-13306}
SLURM_CRED_EXPIRE=${SLURM_CRED_EXPIRE:-30}
CLUSTER=attmask
export SLURM_CONF="$SLURM_DIR/slurm.conf"

die() { echo "up.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it starts munged, slurmctld and slurmd)"
for bin in munged slurmctld slurmd sbatch; do
  command -v "$bin" >/dev/null || die "$bin not found: apt-get install -y --no-install-recommends slurm-wlm munge slurmdbd mariadb-server"
done
if [ "$SLURM_WITH_DBD" = 1 ]; then
  for bin in slurmdbd mariadbd mariadb-install-db; do
    command -v "$bin" >/dev/null || die "$bin not found: apt-get install -y slurmdbd mariadb-server (or SLURM_WITH_DBD=0)"
  done
fi
mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool" "$SLURM_DIR/log"

wait_for() {  # wait_for <seconds> <command...>: poll until the command succeeds
  local tries=$(( $1 * 4 )); shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# --- munge: one key shared by every daemon and client of the cluster
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  head -c 1024 /dev/urandom > /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged
  wait_for 20 sh -c 'munge -n | unmunge' || die "munged did not start (see /var/log/munge/munged.log)"
  # munged (user munge) writes its pid file under /run/munge; note that we own it for down.sh
  echo /run/munge/munged.pid > "$SLURM_DIR/munged.started"
fi

# --- accounting: mariadb (own data dir, TCP on 127.0.0.1 only) + slurmdbd
ACCOUNTING="AccountingStorageType=accounting_storage/none"
if [ "$SLURM_WITH_DBD" = 1 ]; then
  DB=(mariadb --protocol=socket --socket="$SLURM_DIR/mysql.sock" -uroot)
  if [ ! -d "$SLURM_DIR/mysql/mysql" ]; then
    mariadb-install-db --datadir="$SLURM_DIR/mysql" --user=root --auth-root-authentication-method=normal \
      --skip-test-db > "$SLURM_DIR/log/mysql-install.log" 2>&1 || die "mariadb-install-db failed: $SLURM_DIR/log/mysql-install.log"
  fi
  if ! "${DB[@]}" -e 'select 1' >/dev/null 2>&1; then
    setsid mariadbd --no-defaults --datadir="$SLURM_DIR/mysql" --socket="$SLURM_DIR/mysql.sock" \
      --pid-file="$SLURM_DIR/mysql.pid" --port="$SLURM_DB_PORT" --bind-address=127.0.0.1 --user=root \
      --log-error="$SLURM_DIR/log/mysql.log" < /dev/null > /dev/null 2>&1 &
    wait_for 60 "${DB[@]}" -e 'select 1' || die "mariadbd did not start: $SLURM_DIR/log/mysql.log"
  fi
  "${DB[@]}" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
                 GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  cat > "$SLURM_DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
PidFile=$SLURM_DIR/slurmdbd.pid
LogFile=$SLURM_DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$SLURM_DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
  chmod 600 "$SLURM_DIR/slurmdbd.conf"
  ACCOUNTING="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux"
fi

# --- slurm.conf: one node (all cores, memory minus 2 GiB for the system), one partition
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024) - 2048}' /proc/meminfo)
[ "$MEM_MB" -ge 512 ] || MEM_MB=512
cat > "$SLURM_CONF.new" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=$SLURM_CRED_EXPIRE
MailProg=/bin/true
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
# linuxproc + task/none: no cgroups needed (containers, CI runners)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
ReturnToService=2
# seconds between SIGTERM and SIGKILL: time for the training loop to flush a checkpoint
KillWait=30
MinJobAge=600
$ACCOUNTING
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
CHANGED=1
cmp -s "$SLURM_CONF.new" "$SLURM_CONF" 2>/dev/null && CHANGED=0
mv "$SLURM_CONF.new" "$SLURM_CONF"

# --- daemons (each started only if its pid file does not name a live process)
if [ "$SLURM_WITH_DBD" = 1 ] && ! alive "$SLURM_DIR/slurmdbd.pid"; then
  slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
  wait_for 30 sacctmgr -n list cluster || die "slurmdbd did not answer: $SLURM_DIR/log/slurmdbd.log"
fi
if [ "$SLURM_WITH_DBD" = 1 ] && ! sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi
if alive "$SLURM_DIR/slurmctld.pid"; then
  [ "$CHANGED" = 0 ] || scontrol reconfigure  # running daemons pick up the new slurm.conf
else
  slurmctld
fi
alive "$SLURM_DIR/slurmd.pid" || slurmd -N localhost
wait_for 60 sh -c 'sinfo -h -o %T | grep -Eq "idle|mix|alloc"' \
  || die "node did not come up: $SLURM_DIR/log/slurmctld.log, $SLURM_DIR/log/slurmd.log"
sinfo >&2
echo "export SLURM_CONF=$SLURM_CONF"
