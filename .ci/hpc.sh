#!/usr/bin/env bash
# A real one-node SLURM cluster and a key-only sshd on loopback, for the cluster tests.
#   .ci/hpc.sh start   install (Debian packages: slurm-wlm, munge, openssh-server), configure, start,
#                      wait until the node is idle and sshd answers
#   .ci/hpc.sh stop    stop every daemon it started, by PID
# Writes .ci/hpc.env (sourced by the tests through CRYSTAL_ATOMATE_HPC_ENV): host, port, user, key.
# No init system and no cgroups here: daemons run in the foreground under nohup, with
# proctrack/linuxproc and task/none (docs/clusters.md says why).
set -euo pipefail
cd "$(dirname "$0")"
STATE="${CRYSTAL_ATOMATE_HPC_DIR:-/tmp/crystal-atomate-hpc}"
SSH_PORT="${CRYSTAL_ATOMATE_HPC_SSH_PORT:-2222}"
NODE=loopback
SLURM_ETC=/etc/slurm

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null && [ -x /usr/sbin/sshd ]; then return; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge openssh-server >/dev/null
}

start_munge() {
    mkdir -p /run/munge /var/lib/munge /var/log/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged --force
    fi
    pgrep -x munged >"$STATE/munged.pid"
}

write_slurm_conf() {
    local memory
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    memory=$((memory * 95 / 100))
    local cpus
    cpus=$(nproc)
    mkdir -p "$SLURM_ETC" "$STATE/slurm/state" "$STATE/slurm/spool"
    cat >"$SLURM_ETC/slurm.conf" <<CONF
ClusterName=loopback
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/slurm/state
SlurmdSpoolDir=$STATE/slurm/spool
SlurmctldPidFile=$STATE/slurm/slurmctld.pid
SlurmdPidFile=$STATE/slurm/slurmd.pid
SlurmctldLogFile=$STATE/slurm/slurmctld.log
SlurmdLogFile=$STATE/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start_slurm() {
    write_slurm_conf
    local started
    started=$(date +%s)
    nohup slurmctld -D >"$STATE/slurm/slurmctld.out" 2>&1 &
    echo $! >"$STATE/slurmctld.pid"
    nohup slurmd -D -N "$NODE" >"$STATE/slurm/slurmd.out" 2>&1 &
    echo $! >"$STATE/slurmd.pid"
    # A node may show idle before the new slurmd registered (restart race): wait for its start time too.
    for _ in $(seq 60); do
        if sinfo -h -n "$NODE" -o %t 2>/dev/null | grep -qx idle; then
            local slurmd_start
            slurmd_start=$(scontrol show node "$NODE" 2>/dev/null | sed -n 's/.*SlurmdStartTime=\([^ ]*\).*/\1/p')
            if [ -n "$slurmd_start" ] && [ "$slurmd_start" != "None" ] \
                && [ "$(date -d "$slurmd_start" +%s)" -ge $((started - 1)) ]; then
                return
            fi
        fi
        sleep 0.5
    done
    echo "SLURM did not come up: see $STATE/slurm/*.log" >&2
    return 1
}

start_sshd() {
    mkdir -p /run/sshd "$STATE/ssh" /root/.ssh
    chmod 700 /root/.ssh
    [ -f "$STATE/ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$STATE/ssh/host_ed25519"
    [ -f "$STATE/ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$STATE/ssh/id_ed25519"
    local auth="$STATE/ssh/authorized_keys"
    cp "$STATE/ssh/id_ed25519.pub" "$auth"
    chmod 600 "$auth"
    cat >"$STATE/ssh/sshd_config" <<CONF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $STATE/ssh/host_ed25519
PidFile $STATE/ssh/sshd.pid
AuthorizedKeysFile $auth
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
    /usr/sbin/sshd -f "$STATE/ssh/sshd_config"
    for _ in $(seq 40); do
        ssh -q -i "$STATE/ssh/id_ed25519" -p "$SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile="$STATE/ssh/known_hosts" root@127.0.0.1 true && return
        sleep 0.25
    done
    echo "sshd did not answer on 127.0.0.1:$SSH_PORT" >&2
    return 1
}

write_env() {
    cat >hpc.env <<ENV
CRYSTAL_ATOMATE_HPC_HOST=127.0.0.1
CRYSTAL_ATOMATE_HPC_PORT=$SSH_PORT
CRYSTAL_ATOMATE_HPC_USER=root
CRYSTAL_ATOMATE_HPC_KEY=$STATE/ssh/id_ed25519
CRYSTAL_ATOMATE_HPC_KNOWN_HOSTS=$STATE/ssh/known_hosts
CRYSTAL_ATOMATE_HPC_PARTITION=debug
ENV
}

stop_pidfile() {
    if [ -f "$1" ]; then
        kill "$(cat "$1")" 2>/dev/null || true
        rm -f "$1"
    fi
}

stop() {
    stop_pidfile "$STATE/ssh/sshd.pid"
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
    stop_pidfile "$STATE/munged.pid"
    rm -f hpc.env
}

case "${1:-start}" in
    start) mkdir -p "$STATE"; install; start_munge; start_slurm; start_sshd; write_env ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
