#!/usr/bin/env bash
# How the data size changes things (issue "Proof", section 5):
#   A. write throughput with the store pre-filled to 0, 1M, 10M, 50M keys;
#   B. larger than RAM: strata in a 1 GiB memory cgroup with ~10 GiB of
#      incompressible data: random GET p50/p99 and SET throughput, against
#      the same data with no limit and the files warm in the page cache, and
#      whether the OOM killer struck;
#   C. recovery: kill -9 after a write burst at each size (and at the big
#      size, inside the cgroup), time until the server answers PING and a
#      GET of the last acknowledged key.
#
#   bench/data-size.sh [--sizes "0 1000000 10000000 50000000"] [--big-keys 10000000]
#                      [--big-value-size 1000] [--values random|text]
#                      [--duration-s 10] [--io-threads N] [--big-io-threads 16]
#                      [--skip-big] [--skip-sizes]
#
# --big-io-threads: network threads for section B. Reads run on them, and a
# read that misses the page cache blocks its thread on the disk: with the
# default (one per core) at most 2 disk reads are in flight here. 16 lets
# the disk serve many at once (measured: 1.7x the GET throughput on cold
# data, about 7% less on unpipelined in-memory SETs).
#
# Values are incompressible (`strata-bench --values random`) unless
# `--values text`: the engine compresses its blocks, so compressible values
# would make "10 GiB of data" a few GiB on disk.
#
# Needs root for the cgroup (cgroup v1 memory controller or cgroup v2).
# Results: a markdown table on stdout and in bench/results/data-size-<ts>.md,
# and section A's chart (a Rust plotters SVG) in data-size-<ts>-A.svg.
# Every run is bounded by `timeout`; servers are stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

sizes="0 1000000 10000000 50000000"
big_keys=10000000
big_value_size=1000
values=random
duration_s=10
io_threads=""
big_io_threads=16
skip_big=0
skip_sizes=0
# Compactions left running by the load compete with the measured reads for
# the disk; wait (bounded) until none is active before measuring.
settle_s_max=600
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --big-keys) big_keys=$2; shift 2 ;;
        --big-value-size) big_value_size=$2; shift 2 ;;
        --values) values=$2; shift 2 ;;
        --duration-s) duration_s=$2; shift 2 ;;
        --io-threads) io_threads=$2; shift 2 ;;
        --big-io-threads) big_io_threads=$2; shift 2 ;;
        --skip-big) skip_big=1; shift ;;
        --skip-sizes) skip_sizes=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

cargo build --release -p strata -p strata-bench -p strata-compare >&2
strata=$PWD/target/release/strata
bench=$PWD/target/release/strata-bench
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=bench/results/data-size-$stamp.md
work=$(mktemp -d /var/tmp/strata-data-size.XXXXXX)
server_pid=""
cgroup_dir=""
cgroup_procs=""
server_args=(--text-listen off)
# Ephemeral, not the default HTTP port (an older build ignores it).
export STRATA_HTTP_LISTEN=127.0.0.1:0
[ -n "$io_threads" ] && server_args+=(--io-threads "$io_threads")

cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "$cgroup_dir" ] && rmdir "$cgroup_dir" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_server DATA_DIR [extra args...]: sets $server_pid and $addr. With
# $in_cgroup=1 the server joins the memory cgroup before it execs, so its
# recovery and every allocation count against the limit.
in_cgroup=0
start_server() {
    local dir=$1; shift
    local out=$work/ready.$$
    rm -f "$out"
    if [ "$in_cgroup" = 1 ]; then
        sh -c 'echo $$ > "$0" && exec "$@"' "$cgroup_procs" \
            "$strata" server --listen 127.0.0.1:0 "${server_args[@]}" --data-dir "$dir" "$@" \
            >"$out" 2>>"$work/server.log" &
    else
        "$strata" server --listen 127.0.0.1:0 "${server_args[@]}" --data-dir "$dir" "$@" \
            >"$out" 2>>"$work/server.log" &
    fi
    server_pid=$!
    for _ in $(seq 1200); do
        if grep -q '^ready ' "$out" 2>/dev/null; then
            addr=$(sed -n 's/^ready resp=\([^ ]*\).*/\1/p' "$out")
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
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
    timeout 3600 "$bench" --addr "$addr" --format json --threads 1 --values "$values" "$@" 2>>"$work/bench.log"
}

field() { python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print($1)"; }
elapsed() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }

load() { # load KEYS VALUE_SIZE
    [ "$1" -eq 0 ] && return 0
    bench_json --workload set --distribution sequential --keyspace "$1" --value-size "$2" \
        --requests "$1" --warmup-s 0 --pipeline 64 -c 16 >/dev/null
}

# info_field NAME: one field of the server's INFO.
info_field() {
    python3 - "$addr" "$1" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b'*1\r\n$4\r\nINFO\r\n')
data = b''
while not data.endswith(b'\r\n\r\n') and len(data) < 1 << 20:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for line in data.decode(errors='replace').split('\r\n'):
    if line.startswith(sys.argv[2] + ':'):
        print(line.split(':', 1)[1])
PY
}

# settle: waits (at most $settle_s_max) until no compaction or flush runs.
# Prints the seconds waited.
settle() {
    local t0; t0=$(date +%s)
    while [ $(( $(date +%s) - t0 )) -lt "$settle_s_max" ]; do
        if [ "$(info_field strata_active_compactions)" = 0 ] && [ "$(info_field strata_outstanding_flushes)" = 0 ]; then
            sleep 2 # a compaction may be about to be scheduled
            if [ "$(info_field strata_active_compactions)" = 0 ]; then break; fi
        fi
        sleep 1
    done
    echo $(( $(date +%s) - t0 ))
}

# recover DATA_DIR TAG [server args...]: a burst of writes, one last SET,
# kill -9, restart; sets $recovery_s to the seconds from spawn until PING
# and a GET of that last acknowledged key both answer. (Not a command
# substitution: the restarted server's pid must reach this shell.)
recover() {
    local dir=$1 tag=$2; shift 2
    "$bench" --addr "$addr" --values "$values" --workload set --keyspace 100000 --value-size 100 -c 50 \
        --duration-s 2 --warmup-s 0 --threads 1 >/dev/null 2>&1 || true
    local last_key="recovery:last:$tag"
    python3 - "$addr" "$last_key" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
key = sys.argv[2].encode()
s = socket.create_connection((host, int(port)), timeout=10)
s.sendall(b'*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$2\r\nok\r\n' % (len(key), key))
assert s.recv(16).startswith(b'+OK'), "SET not acknowledged"
PY
    kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    local r0 r1; r0=$(date +%s.%N)
    start_server "$dir" "$@"
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
    recovery_s=$(elapsed "$r0" "$r1")
}

{
echo "# Strata: data size ($stamp)"
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM. strata --fsync always${io_threads:+ --io-threads $io_threads}. strata-bench -c 50, --values $values, $duration_s s per measurement."
} | tee "$report"

if [ "$skip_sizes" = 0 ]; then
{
echo
echo "## A. SET throughput against the number of keys already stored (100 B values)"
echo
echo "| keys stored | load time s | data on disk | SET ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
} | tee -a "$report"

declare -A recovery disk
for n in $sizes; do
    dir=$work/a-$n
    start_server "$dir"
    t0=$(date +%s.%N)
    load "$n" 100
    t1=$(date +%s.%N)
    settle >/dev/null
    keyspace=$(( n > 0 ? n : 100000 ))
    line=$(bench_json --workload set --keyspace "$keyspace" --value-size 100 -c 50 --duration-s "$duration_s" --warmup-s 1)
    disk[$n]=$(du -sh "$dir" | cut -f1)
    row=$(echo "$line" | field "'%.0f | %.3f | %.3f' % (d['ops_per_s'], d['latency_us']['p50']/1000, d['latency_us']['p99']/1000)")
    printf '| %s | %.1f | %s | %s |\n' "$n" "$(elapsed "$t0" "$t1")" "${disk[$n]}" "$row" | tee -a "$report"
    recover "$dir" "$n"
    recovery[$n]=$recovery_s
    stop_server
    rm -rf "$dir"
done
# Section A's chart, drawn from the report itself.
"$PWD/target/release/strata-compare" --plot-data-size "$report" >&2

{
echo
echo "## C. Recovery after kill -9 (spawn until PING and GET of the last acknowledged key answer)"
echo
echo "| keys stored | data on disk | recovery s |"
echo "|---|---|---|"
for n in $sizes; do printf '| %s | %s | %s |\n' "$n" "${disk[$n]}" "${recovery[$n]}"; done
} | tee -a "$report"
fi

[ "$skip_big" = 1 ] && exit 0

# B. Larger than RAM.
make_cgroup() {
    if [ -d /sys/fs/cgroup/memory ]; then
        cgroup_dir=/sys/fs/cgroup/memory/strata-data-size-$$
        mkdir "$cgroup_dir"
        echo $((1024 * 1024 * 1024)) > "$cgroup_dir/memory.limit_in_bytes"
        cgroup_procs=$cgroup_dir/cgroup.procs
        oom_count() { awk '/oom_kill /{print $2}' "$cgroup_dir/memory.oom_control" 2>/dev/null || echo "?"; }
        peak_mib() { awk '{printf "%.0f", $1/1048576}' "$cgroup_dir/memory.max_usage_in_bytes"; }
    elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        cgroup_dir=/sys/fs/cgroup/strata-data-size-$$
        mkdir "$cgroup_dir"
        echo $((1024 * 1024 * 1024)) > "$cgroup_dir/memory.max"
        cgroup_procs=$cgroup_dir/cgroup.procs
        oom_count() { awk '/oom_kill /{print $2}' "$cgroup_dir/memory.events"; }
        peak_mib() { awk '{printf "%.0f", $1/1048576}' "$cgroup_dir/memory.peak" 2>/dev/null || echo "?"; }
    else
        echo "no memory cgroup available" >&2; exit 1
    fi
}

# measure LABEL LIMITED(0/1): GETs then SETs against the running server.
measure() {
    local get set rss alive=yes
    get=$(bench_json --workload get --keyspace "$big_keys" --value-size "$big_value_size" -c 50 --duration-s "$duration_s" --warmup-s 5)
    set=$(bench_json --workload set --keyspace "$big_keys" --value-size "$big_value_size" -c 50 --duration-s "$duration_s" --warmup-s 1)
    rss=$(awk '/VmHWM/{printf "%.0f", $2/1024}' /proc/$server_pid/status)
    kill -0 "$server_pid" 2>/dev/null || alive="no (killed)"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(du -sh "$big_dir" | cut -f1)" \
        "$(echo "$get" | field "'%.0f | %.3f | %.3f | %.3f' % (d['ops_per_s'], d['latency_us']['p50']/1000, d['latency_us']['p99']/1000, d['latency_us']['p999']/1000)")" \
        "$(echo "$set" | field "'%.0f | %.3f' % (d['ops_per_s'], d['latency_us']['p99']/1000)")" "$alive" "$rss" \
        "$([ "$2" = 1 ] && echo "$(peak_mib) / $(oom_count)" || echo -)" | tee -a "$report"
}

make_cgroup
big_dir=$work/big
cache_args=(--cache-size-bytes $((256 * 1024 * 1024)) --io-threads "$big_io_threads")

# One load, inside the cgroup, shared by both runs.
in_cgroup=1
start_server "$big_dir" "${cache_args[@]}"
t0=$(date +%s.%N)
load "$big_keys" "$big_value_size"
t1=$(date +%s.%N)
settled_s=$(settle)
{
echo
echo "## B. Larger than RAM: $big_keys keys x $big_value_size B values (--values $values), block cache 256 MiB, --io-threads $big_io_threads"
echo
echo "Load inside the cgroup: $(elapsed "$t0" "$t1") s, then ${settled_s} s until compactions stopped."
echo "Both runs use the same data. The limited run starts with the page cache dropped; the"
echo "unlimited run starts after every data file was read once, so all of it is in RAM."
echo
echo "| run | data on disk | GET ops/s | GET p50 ms | GET p99 ms | GET p99.9 ms | SET ops/s | SET p99 ms | server alive | peak RSS MiB | cgroup peak MiB / OOM kills |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
} | tee -a "$report"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
measure "1 GiB cgroup" 1
recover "$big_dir" big "${cache_args[@]}"
big_recovery=$recovery_s
[ "$(oom_count)" = 0 ] || echo "OOM kills in the cgroup: $(oom_count)" | tee -a "$report"
stop_server

in_cgroup=0
# Warm: read every file once so the page cache holds the whole store.
find "$big_dir" -type f -exec cat {} + >/dev/null
start_server "$big_dir" "${cache_args[@]}"
measure "no limit, warm" 0
stop_server

{
echo
echo "Recovery after kill -9 at this size, inside the 1 GiB cgroup (spawn until PING and GET of the last acknowledged key answer): ${big_recovery} s"
} | tee -a "$report"
echo >&2; echo "report: $report" >&2
