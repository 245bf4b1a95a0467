#!/bin/bash
# A distributed.processes job whose two MPI ranks run on two network hosts, on one machine: a second
# "host" is a network namespace (its own interface 10.77.0.2, its own host name h2) with an sshd, which is
# how mpirun reaches other hosts. The ranks share one PostgreSQL (a fleet's store, at 10.77.0.1) and one
# data folder, as hosts on shared storage would. It kills the remote rank of a second job to show the retry.
#
# Needs root (namespaces, sshd), a built descent (default .build/debug/descent), make test's packages and
# openssh-server (installed when missing).
# Usage: sudo scripts/mpi-two-hosts.sh [path/to/descent]; it leaves nothing running when it ends.
set -euo pipefail
descent=$(realpath "${1:-.build/debug/descent}")
work=$(mktemp -d /tmp/descent-two-hosts.XXXXXX)
port=18090 pgport=55432
command -v sshd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; }

cleanup() {
    set +e
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null
    [ -f "$work/sshd.pid" ] && kill "$(cat "$work/sshd.pid")" 2>/dev/null
    setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/pg_ctl -D "$work/pg" -m immediate stop >/dev/null 2>&1
    ip netns del h2 2>/dev/null
    ip link del veth1 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The second host: a network namespace joined to this one by a veth pair.
ip netns add h2
ip link add veth1 type veth peer name veth2
ip link set veth2 netns h2
ip addr add 10.77.0.1/24 dev veth1 && ip link set veth1 up
ip netns exec h2 ip addr add 10.77.0.2/24 dev veth2
ip netns exec h2 ip link set veth2 up && ip netns exec h2 ip link set lo up

# mpirun starts the remote daemon over ssh: a key of root's, accepted by an sshd inside h2 named h2.
mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh
[ -f /root/.ssh/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519
grep -qf /root/.ssh/id_ed25519.pub /root/.ssh/authorized_keys 2>/dev/null || cat /root/.ssh/id_ed25519.pub >> /root/.ssh/authorized_keys
ip netns exec h2 unshare --uts sh -c "hostname h2; exec /usr/sbin/sshd -o ListenAddress=10.77.0.2 -o PermitRootLogin=prohibit-password -o PidFile=$work/sshd.pid"
sleep 1
echo "second host: $(ssh -o StrictHostKeyChecking=no -o BatchMode=yes root@10.77.0.2 hostname)"

# The fleet's PostgreSQL, reachable from both hosts.
mkdir -p "$work/pg" && chown postgres "$work" "$work/pg"
setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/initdb -D "$work/pg" --auth=trust -U postgres >/dev/null
echo "host all all 10.77.0.0/24 trust" >> "$work/pg/pg_hba.conf"
setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/pg_ctl -D "$work/pg" -l "$work/pg.log" \
    -o "-c listen_addresses=127.0.0.1,10.77.0.1 -p $pgport -c unix_socket_directories=$work" start >/dev/null
sleep 1
psql -q -h 10.77.0.1 -p $pgport -U postgres -c "CREATE DATABASE descent"

# Open MPI between the hosts: its daemons and ranks talk over the veth network; ssh without questions.
export OMPI_MCA_btl_tcp_if_include=10.77.0.0/24 OMPI_MCA_oob_tcp_if_include=10.77.0.0/24
export OMPI_MCA_plm_rsh_args="-o StrictHostKeyChecking=no -o BatchMode=yes"
mkdir -p "$work/data"
"$descent" serve --port $port --data-dir "$work/data" --database "postgres://postgres@10.77.0.1:$pgport/descent" \
    --node-id vm --mpi-hosts 10.77.0.1:1,10.77.0.2:1 > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf localhost:$port/healthz >/dev/null && break; sleep 0.2; done

submit() {
    curl -sf -X POST localhost:$port/v1/jobs -H 'content-type: application/json' -d "{\"name\": \"$1\",
      \"dataset\": {\"builtin\": \"moons\", \"samples\": 4000, \"seed\": 1},
      \"model\": {\"layers\": [{\"type\": \"dense\", \"units\": 256, \"activation\": \"relu\"}, {\"type\": \"dense\", \"units\": 2}]},
      \"training\": {\"epochs\": $2, \"batch_size\": 16, \"seed\": 3},
      \"distributed\": {\"processes\": 2, \"hosts\": [\"10.77.0.1:1\", \"10.77.0.2:1\"]}}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}
wait_for() {
    for _ in $(seq 300); do
        state=$(curl -sf localhost:$port/v1/jobs/$1 | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["status"], j["epoch"], j["attempt"])')
        case "$state" in succeeded*|failed*|cancelled*) echo "$state"; return;; esac
        sleep 0.5
    done
    echo "timed out: $state"
}
remote_ranks() {
    for pid in $(ip netns pids h2); do
        case "$(cat /proc/$pid/cmdline 2>/dev/null | tr '\0' ' ')" in *"descent worker"*) echo "$pid";; esac
    done
}
# Waits (up to 60 s) until a rank of a job runs inside h2, and prints its pid.
await_remote_rank() {
    for _ in $(seq 600); do
        victim=$(remote_ranks | head -1)
        [ -n "$victim" ] && { echo "$victim"; return; }
        sleep 0.1
    done
}

# Epochs enough for a few seconds of training on an idle machine, so the ranks are seen at work.
job=$(submit two-hosts 200)
echo "ranks inside h2 while $job trains: $([ -n "$(await_remote_rank)" ] && remote_ranks | wc -l)"
echo "$job: $(wait_for "$job") (status, epochs, attempt)"

job=$(submit two-hosts-killed 400)
victim=$(await_remote_rank)
sleep 1
echo "kill -9 of the rank on h2 (pid $victim) while $job trains: $(curl -sf localhost:$port/v1/jobs/$job | python3 -c 'import json, sys; j = json.load(sys.stdin); print(j["status"], "at epoch", j["epoch"])')"
kill -9 "$victim"
echo "$job: $(wait_for "$job") (status, epochs, attempt)"
curl -sf localhost:$port/v1/jobs/$job/metrics |
    python3 -c 'import json, sys; e = [r["epoch"] for r in json.load(sys.stdin)["epochs"]]; print("metrics rows:", len(e), "every epoch once:", e == list(range(1, len(e) + 1)))'
echo "server: $(curl -sf localhost:$port/healthz)"
