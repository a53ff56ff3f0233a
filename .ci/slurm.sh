#!/usr/bin/env bash
# Start a throw-away one-node Slurm cluster on 127.0.0.1 for the Slurm tests (tests/test_slurm_cluster.py).
#
#   eval "$(bash .ci/slurm.sh)"      # exports SLURM_CONF=... and GPUPAIR_TEST_SLURM=1
#
# Idempotent: installs Debian's slurm-wlm and munge with apt-get if they are missing, writes its own
# slurm.conf (never /etc/slurm), starts munged, slurmctld and slurmd as plain daemons (no systemd) if they
# are not running, and waits until `sinfo` shows the node idle. Only the `export ...` line goes to stdout;
# everything else goes to stderr.
#
# The node: NodeName=localhost at 127.0.0.1, proctrack/linuxproc (no cgroups needed: containers often have
# none), select/cons_tres with CR_CPU (one CPU per array task). It declares at least
# GPUPAIR_SLURM_CPUS (4) CPUs, more than a 2-core CI machine has, so that the tests' 3 array tasks
# (one CPU each) run at once rather than one after another; SlurmdParameters=config_overrides makes slurmd
# accept the declared count, and task/none means no task is bound to a CPU that does not exist.
# Settings (environment): GPUPAIR_SLURM_DIR (/tmp/gpupair-ci-slurm), GPUPAIR_SLURM_CPUS (4),
# GPUPAIR_SLURMCTLD_PORT (6817), GPUPAIR_SLURMD_PORT (6818).
set -euo pipefail

BASE="${GPUPAIR_SLURM_DIR:-/tmp/gpupair-ci-slurm}"
MIN_CPUS="${GPUPAIR_SLURM_CPUS:-4}"
CTLD_PORT="${GPUPAIR_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${GPUPAIR_SLURMD_PORT:-6818}"
NODE=localhost
CONF="$BASE/slurm.conf"

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: slurmd and munged need it (CI runs as root)"

missing=()
for tool in slurmctld slurmd sbatch munged; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing slurm-wlm and munge with apt-get (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q slurm-wlm munge >&2
fi
export PATH="$PATH:/usr/sbin:/sbin"

# -- munge: the authentication every Slurm message carries -----------------------------------------
id munge >/dev/null 2>&1 || useradd --system --home-dir /var/lib/munge --shell /usr/sbin/nologin munge >&2
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key >&2
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    log "starting munged"
    runuser -u munge -- munged >&2 || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.2
    done
    munge -n </dev/null | unmunge >/dev/null || die "munge does not answer (see /var/log/munge/munged.log)"
fi

# -- the cluster's configuration, in our own directory --------------------------------------------
mkdir -p "$BASE/state" "$BASE/spool" "$BASE/log"
CPUS="$(nproc)"
[ "$CPUS" -ge "$MIN_CPUS" ] || CPUS="$MIN_CPUS"
cat > "$CONF.new" <<EOF
# Written by .ci/slurm.sh: a one-node test cluster on 127.0.0.1.
ClusterName=gpupair-ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
# No cgroups: track a job's processes by their parents, bind no task to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# More CPUs than the machine may have (see the header of .ci/slurm.sh): accept the declared count.
SlurmdParameters=config_overrides
ReturnToService=2
# scancel: SIGTERM, then SIGKILL to what is left after KillWait seconds.
KillWait=10
MinJobAge=600
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then
    rm "$CONF.new"
else
    mv "$CONF.new" "$CONF"
    changed=1
fi
export SLURM_CONF="$CONF"

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "${changed:-0}" = 1 ]; then  # a new configuration: restart what runs with the old one
    for pidfile in "$BASE/slurmd.pid" "$BASE/slurmctld.pid"; do
        if running "$pidfile"; then
            log "configuration changed: stopping PID $(cat "$pidfile")"
            kill "$(cat "$pidfile")"
            for _ in $(seq 50); do running "$pidfile" || break; sleep 0.2; done
        fi
    done
fi
if running "$BASE/slurmctld.pid"; then
    log "slurmctld already running"
else
    log "starting slurmctld (log $BASE/log/slurmctld.log)"
    slurmctld -f "$CONF" >&2 || die "slurmctld did not start (see $BASE/log/slurmctld.log)"
fi
for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; sleep 0.2; done
scontrol ping >/dev/null 2>&1 || { tail -n 20 "$BASE/log/slurmctld.log" >&2 || true; die "slurmctld does not answer"; }
if running "$BASE/slurmd.pid"; then
    log "slurmd already running"
else
    log "starting slurmd for node $NODE (log $BASE/log/slurmd.log)"
    slurmd -f "$CONF" -N "$NODE" >&2 || die "slurmd did not start (see $BASE/log/slurmd.log)"
fi

state=""
for _ in $(seq 150); do
    state="$(sinfo -h -N -n "$NODE" -o '%t' 2>/dev/null | head -n 1)"
    case "$state" in
        idle|mix|alloc) break ;;
        down*|drain*|drng*) scontrol update NodeName="$NODE" State=RESUME >&2 || true ;;
    esac
    sleep 0.2
done
case "$state" in
    idle|mix|alloc) ;;
    *) tail -n 20 "$BASE/log/slurmd.log" >&2 || true; die "node $NODE is '$state', not idle (see $BASE/log)" ;;
esac
log "ready: node $NODE ($CPUS CPUs) is $state (stop with: kill \$(cat $BASE/slurmd.pid) \$(cat $BASE/slurmctld.pid))"
echo "export SLURM_CONF=$CONF GPUPAIR_TEST_SLURM=1"
