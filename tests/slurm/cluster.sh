#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on loopback, for tests/test_slurm.py (docs/cluster.md).
#
#   tests/slurm/cluster.sh start DIR    write the configs, start munged, slurmctld and slurmd, wait until the node
#                                       is idle; state, logs and pid files go to DIR
#   tests/slurm/cluster.sh stop DIR     stop the three daemons by the pids recorded in DIR, remove the configs
#
# Runs as root from Debian's packages (slurmctld slurmd slurm-client munge) without systemd. The config must be at
# /etc/slurm/slurm.conf: the executor plugin removes SLURM_* variables (SLURM_CONF too) before its nested srun.
# A slurm.conf that this script did not write is never touched. Two GPUs are declared on character devices made
# with `mknod c 1 3` (like /dev/null), so that GPU requests are granted (and CUDA_VISIBLE_DEVICES is set) on a
# machine without GPUs. Ports are not SLURM's defaults, so that a real local SLURM is not disturbed.
set -euo pipefail

MARK="# written by mesodyn tests/slurm/cluster.sh"
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")

ours() { [[ ! -e $1 ]] || head -n1 "$1" | grep -qxF "$MARK"; }

stop() {
    local name pid
    for name in slurmd slurmctld munged; do
        [[ -s $dir/$name.pid ]] || continue
        pid=$(cat "$dir/$name.pid")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    # the configs go with the cluster (only ours: a slurm.conf this script did not write stays)
    for f in $CONF $GRES; do ours "$f" && rm -f "$f"; done
    return 0
}

start() {
    for f in $CONF $GRES; do
        ours "$f" || { echo "cluster.sh: $f exists and was not written by this script; not touching it" >&2; exit 2; }
    done
    mkdir -p "$dir"/{ctld,spool,gpu} /etc/slurm
    chmod 700 "$dir"
    local host cpus mem
    host=$(hostname -s)
    cpus=${SLURM_TEST_CPUS:-8}        # declared, not real: config_overrides lets slurmd trust slurm.conf
    mem=${SLURM_TEST_MEM_MB:-65536}   # not enforced (no cgroups); large enough for the workflow's mem_mb requests
    for i in 0 1; do [[ -c $dir/gpu/nvidia$i ]] || mknod "$dir/gpu/nvidia$i" c 1 3; done

    # munge with its own key and socket, so that a munged already running is not disturbed
    [[ -s $dir/munge.key ]] || { head -c 1024 /dev/urandom >"$dir/munge.key"; chmod 600 "$dir/munge.key"; }
    munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
        --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"

    cat >$CONF <<CONF
$MARK
ClusterName=mesodyn-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# the executor plugin asks squeue (no slurmdbd, so no sacct): finished jobs must stay visible for at least
# 3 x its init-seconds-before-status-checks (default 40 s); an hour keeps a whole test run listed
MinJobAge=3600
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
CONF
    cat >$GRES <<CONF
$MARK
NodeName=$host Name=gpu File=$dir/gpu/nvidia[0-1]
CONF
    slurmctld
    slurmd
    for _ in $(seq 120); do
        if sinfo -h -N -o %t 2>/dev/null | grep -qx idle; then
            return 0
        fi
        sleep 0.5
    done
    echo "cluster.sh: the node did not become idle in 60 s; sinfo says: $(sinfo -N 2>&1)" >&2
    tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
}

case $cmd in
    start) start ;;
    stop) stop ;;
    *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
