#!/usr/bin/env bash
# How the data size changes things (issue "Proof", section 5):
#   A. write throughput with the store pre-filled to 0, 1M, 10M, 50M keys;
#   B. larger than RAM: strata in a 1 GiB memory cgroup with ~10 GiB of data:
#      random GET p50/p99 and SET throughput, against the same run without
#      the limit (data in the page cache), and whether the OOM killer struck;
#   C. recovery: kill -9 after a write burst at each size, time until the
#      server answers PING and a GET of the last acknowledged key.
#
#   bench/data-size.sh [--sizes "0 1000000 10000000 50000000"] [--big-keys 10000000]
#                      [--big-value-size 1000] [--duration-s 10] [--skip-big]
#
# Needs root for the cgroup (cgroup v1 memory controller or cgroup v2).
# Results: a markdown table on stdout and in bench/results/data-size-<ts>.md.
# Every run is bounded by `timeout`; servers are stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="0 1000000 10000000 50000000"
big_keys=10000000
big_value_size=1000
duration_s=10
skip_big=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --big-keys) big_keys=$2; shift 2 ;;
        --big-value-size) big_value_size=$2; shift 2 ;;
        --duration-s) duration_s=$2; shift 2 ;;
        --skip-big) skip_big=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

cargo build --release -p strata -p strata-bench >&2
strata=$PWD/target/release/strata
bench=$PWD/target/release/strata-bench
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=bench/results/data-size-$stamp.md
work=$(mktemp -d /var/tmp/strata-data-size.XXXXXX)
server_pid=""
cgroup_dir=""

cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "$cgroup_dir" ] && rmdir "$cgroup_dir" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_server DATA_DIR [extra args...]: sets $server_pid and $addr.
start_server() {
    local dir=$1; shift
    local out=$work/ready.$$
    rm -f "$out"
    "$strata" server --listen 127.0.0.1:0 --text-listen off --data-dir "$dir" "$@" \
        >"$out" 2>>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 600); do
        if grep -q '^ready ' "$out" 2>/dev/null; then
            addr=$(sed -n 's/^ready resp=\([^ ]*\).*/\1/p' "$out")
            return 0
        fi
        sleep 0.1
    done
    echo "server did not start; log:" >&2; tail -20 "$work/server.log" >&2; exit 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# bench_json ARGS...: runs strata-bench against $addr, prints its JSON line.
bench_json() {
    timeout 3600 "$bench" --addr "$addr" --format json --threads 1 "$@" 2>>"$work/bench.log"
}

field() { python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print($1)"; }
elapsed() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }

load() { # load KEYS VALUE_SIZE
    [ "$1" -eq 0 ] && return 0
    bench_json --workload set --distribution sequential --keyspace "$1" --value-size "$2" \
        --requests "$1" --warmup-s 0 --pipeline 64 -c 16 >/dev/null
}

{
echo "# Strata: data size ($stamp)"
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM. strata --fsync always. strata-bench -c 50, $duration_s s per measurement."
echo
echo "## A. SET throughput against the number of keys already stored"
echo
echo "| keys stored | load time s | SET ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
} | tee "$report"

declare -A recovery
for n in $sizes; do
    dir=$work/a-$n
    start_server "$dir"
    t0=$(date +%s.%N)
    load "$n" 100
    t1=$(date +%s.%N)
    keyspace=$(( n > 0 ? n : 100000 ))
    line=$(bench_json --workload set --keyspace "$keyspace" --value-size 100 -c 50 --duration-s "$duration_s" --warmup-s 1)
    row=$(echo "$line" | field "'%.0f | %.3f | %.3f' % (d['ops_per_s'], d['latency_us']['p50']/1000, d['latency_us']['p99']/1000)")
    printf '| %s | %.1f | %s |\n' "$n" "$(elapsed "$t0" "$t1")" "$row" | tee -a "$report"

    # C. recovery at this size: a burst of writes, kill -9, restart.
    "$bench" --addr "$addr" --workload set --keyspace 100000 --value-size 100 -c 50 --duration-s 2 --warmup-s 0 --threads 1 >/dev/null 2>&1 || true
    last_key="recovery:last:$n"
    python3 - "$addr" "$last_key" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
key = sys.argv[2].encode()
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b'*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$2\r\nok\r\n' % (len(key), key))
assert s.recv(16).startswith(b'+OK'), "SET not acknowledged"
PY
    kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    r0=$(date +%s.%N)
    start_server "$dir"
    python3 - "$addr" "$last_key" <<'PY'
import socket, sys, time
host, port = sys.argv[1].rsplit(':', 1)
key = sys.argv[2].encode()
deadline = time.time() + 120
while True:
    try:
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b'*1\r\n$4\r\nPING\r\n')
        assert s.recv(16).startswith(b'+PONG')
        s.sendall(b'*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n' % (len(key), key))
        assert s.recv(64) == b'$2\r\nok\r\n', "last acknowledged key missing after restart"
        break
    except (ConnectionError, socket.timeout):
        if time.time() > deadline:
            raise
        time.sleep(0.01)
PY
    r1=$(date +%s.%N)
    recovery[$n]=$(elapsed "$r0" "$r1")
    stop_server
    du -sh "$dir" >&2
    rm -rf "$dir"
done

{
echo
echo "## C. Recovery after kill -9 (spawn until PING and GET of the last acknowledged key answer)"
echo
echo "| keys stored | recovery s |"
echo "|---|---|"
for n in $sizes; do printf '| %s | %.3f |\n' "$n" "${recovery[$n]}"; done
} | tee -a "$report"

[ "$skip_big" = 1 ] && exit 0

# B. Larger than RAM.
make_cgroup() {
    if [ -d /sys/fs/cgroup/memory ]; then
        cgroup_dir=/sys/fs/cgroup/memory/strata-data-size-$$
        mkdir "$cgroup_dir"
        echo $((1024 * 1024 * 1024)) > "$cgroup_dir/memory.limit_in_bytes"
        cgroup_procs=$cgroup_dir/cgroup.procs
        oom_count() { awk '/oom_kill /{print $2}' "$cgroup_dir/memory.oom_control" 2>/dev/null || echo "?"; }
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        cgroup_dir=/sys/fs/cgroup/strata-data-size-$$
        mkdir "$cgroup_dir"
        echo $((1024 * 1024 * 1024)) > "$cgroup_dir/memory.max"
        cgroup_procs=$cgroup_dir/cgroup.procs
        oom_count() { awk '/oom_kill /{print $2}' "$cgroup_dir/memory.events"; }
    else
        echo "no memory cgroup available" >&2; exit 1
    fi
}

big_run() { # big_run LABEL LIMITED(0/1)
    local dir=$work/big-$1
    start_server "$dir" --cache-size-bytes $((256 * 1024 * 1024))
    if [ "$2" = 1 ]; then echo "$server_pid" > "$cgroup_procs"; fi
    local t0 t1; t0=$(date +%s.%N)
    load "$big_keys" "$big_value_size"
    t1=$(date +%s.%N)
    # Drop the page cache so the unlimited run starts equal, then measure.
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    local get set
    get=$(bench_json --workload get --keyspace "$big_keys" --value-size "$big_value_size" -c 50 --duration-s "$duration_s" --warmup-s 2)
    set=$(bench_json --workload set --keyspace "$big_keys" --value-size "$big_value_size" -c 50 --duration-s "$duration_s" --warmup-s 1)
    local rss; rss=$(awk '/VmHWM/{print $2/1024}' /proc/$server_pid/status)
    local alive=yes; kill -0 "$server_pid" 2>/dev/null || alive="no (killed)"
    printf '| %s | %s | %.0f | %s | %s | %s | %.0f | %s |\n' "$1" "$(du -sh "$dir" | cut -f1)" "$(elapsed "$t0" "$t1")" \
        "$(echo "$get" | field "'%.0f | %.3f | %.3f' % (d['ops_per_s'], d['latency_us']['p50']/1000, d['latency_us']['p99']/1000)")" \
        "$(echo "$set" | field "'%.0f' % d['ops_per_s']")" "$alive" "$rss" "$([ "$2" = 1 ] && oom_count || echo -)" | tee -a "$report"
    stop_server
    rm -rf "$dir"
}

make_cgroup
{
echo
echo "## B. Larger than RAM: $big_keys keys x $big_value_size B values, block cache 256 MiB"
echo
echo "| run | data on disk | load s | GET ops/s | GET p50 ms | GET p99 ms | SET ops/s | server alive | peak RSS MiB | OOM kills |"
echo "|---|---|---|---|---|---|---|---|---|---|"
} | tee -a "$report"
big_run "1 GiB cgroup" 1
big_run "no memory limit" 0
echo >&2; echo "report: $report" >&2
