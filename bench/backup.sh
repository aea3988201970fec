#!/usr/bin/env bash
# Backup and restore throughput (issue 22, section 3): fills a single node
# with SIZE MB of incompressible values, then measures
#   - `strata backup save` (online, over RESP): MB/s, the client's peak RSS,
#     and the server's RSS before and at most during the save;
#   - `strata backup status` (reads and verifies the whole file): MB/s;
#   - `strata backup restore` into a new data directory: MB/s;
# and checks the restored node's key count.
#
#   bench/backup.sh [--size-mb 1024] [--value-size 4096] [--time-bound-s 600]
#                   [--cache-size-bytes 64MiB] [--dir /var/tmp] [--memory-max-mb M]
#
# A store larger than RAM: pick --size-mb above the machine's memory and a
# --dir on a disk with room for about three times that (the store, the
# file, the restored copy). Or, where the disk is too small for that, give
# the server less memory than the store: --memory-max-mb puts it in a
# memory cgroup of M MiB (page cache included; needs root), as
# bench/data-size.sh does. The server's block cache is kept small
# (--cache-size-bytes), so its RSS shows what the backup itself holds.
# Every step is bounded by --time-bound-s (`timeout`); the server is stopped
# by pid on exit. Results: a markdown table on stdout and in
# bench/results/backup-<ts>.md. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."

size_mb=1024
value_size=4096
bound_s=600
cache=64MiB
base=/var/tmp
memory_max_mb=""
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mb) size_mb=$2; shift 2 ;;
        --value-size) value_size=$2; shift 2 ;;
        --time-bound-s) bound_s=$2; shift 2 ;;
        --cache-size-bytes) cache=$2; shift 2 ;;
        --dir) base=$2; shift 2 ;;
        --memory-max-mb) memory_max_mb=$2; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

cargo build --release -p strata -p strata-bench >&2
strata=$PWD/target/release/strata
bench=$PWD/target/release/strata-bench
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
report=bench/results/backup-$stamp.md
work=$(mktemp -d "$base/strata-backup-bench.XXXXXX")
server_pid=""
poller_pid=""

cgroup_dir=""
cleanup() {
    [ -n "$poller_pid" ] && kill "$poller_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "$cgroup_dir" ] && rmdir "$cgroup_dir" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The server's memory cgroup (v2, or v1's memory controller), if asked for.
cgroup_limit=""
if [ -n "$memory_max_mb" ]; then
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        cgroup_dir=/sys/fs/cgroup/strata-backup-bench-$$
        cgroup_limit=memory.max
        cgroup_peak() { awk '{printf "%.0f", $1 / 1048576}' "$cgroup_dir/memory.peak" 2>/dev/null || echo "?"; }
        cgroup_ooms() { awk '/^oom_kill / {print $2}' "$cgroup_dir/memory.events"; }
    elif [ -d /sys/fs/cgroup/memory ]; then
        cgroup_dir=/sys/fs/cgroup/memory/strata-backup-bench-$$
        cgroup_limit=memory.limit_in_bytes
        cgroup_peak() { awk '{printf "%.0f", $1 / 1048576}' "$cgroup_dir/memory.max_usage_in_bytes"; }
        cgroup_ooms() { awk '/^oom_kill / {print $2}' "$cgroup_dir/memory.oom_control"; }
    else
        echo "no memory cgroup available (root and cgroup v1 or v2 are needed)" >&2; exit 2
    fi
    mkdir "$cgroup_dir"
    echo $((memory_max_mb * 1024 * 1024)) >"$cgroup_dir/$cgroup_limit"
fi

# start_server DATA_DIR: sets $server_pid and $addr.
start_server() {
    local out=$work/ready
    rm -f "$out"
    local args=(server --listen 127.0.0.1:0 --text-listen off --fsync never
        --cache-size-bytes "$cache" --data-dir "$1")
    if [ -n "$cgroup_dir" ]; then
        # Joins the cgroup before it execs: every allocation and page counts.
        sh -c 'echo $$ > "$0" && exec "$@"' "$cgroup_dir/cgroup.procs" "$strata" "${args[@]}" \
            >"$out" 2>>"$work/server.log" &
    else
        "$strata" "${args[@]}" >"$out" 2>>"$work/server.log" &
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

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0; }

keys=$(( size_mb * 1000000 / value_size ))
echo "loading $keys keys of $value_size bytes (~$size_mb MB) ..." >&2
start_server "$work/data"
load_start=$(date +%s.%N)
timeout "$bound_s" "$bench" --addr "$addr" --workload get --load --keyspace "$keys" \
    --value-size "$value_size" --values random -c 8 -P 16 --threads 1 \
    --requests 1 --warmup-s 0 --format json >"$work/load.json" 2>>"$work/bench.log"
load_s=$(echo "$(date +%s.%N) - $load_start" | bc)
dbsize=$("$strata" --addr "$addr" stats | sed -n 's/^db0:keys=\([0-9]*\).*/\1/p')

# A fresh process, so that its RSS before the save is what it needs to
# serve (the load's write buffers and allocator slack are gone).
stop_server
start_server "$work/data"
data_mb=$(du -sm "$work/data" | cut -f1)

# save N: one `backup save` while the server's RSS is sampled; sets
# $save_out and $rss_peak.
save() {
    echo "saving ($1) ..." >&2
    rm -f "$work/server-peak"
    ( peak=0; while kill -0 "$server_pid" 2>/dev/null; do
          r=$(rss_mb "$server_pid"); peak=$(echo "if ($r > $peak) $r else $peak" | bc)
          echo "$peak" >"$work/server-peak"; sleep 0.05
      done ) &
    poller_pid=$!
    save_out=$(timeout "$bound_s" "$strata" --addr "$addr" backup save "$work/store.backup")
    kill "$poller_pid" 2>/dev/null || true; wait "$poller_pid" 2>/dev/null || true; poller_pid=""
    rss_peak=$(cat "$work/server-peak")
}
rss_before=$(rss_mb "$server_pid")
save first
rss_peak1=$rss_peak
save_mbs1=$(echo "$save_out" | sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p')
# A second save: whatever the first one left (the block cache filled,
# allocator slack) is there already, so growth here would be the backup's.
save second
block_cache_mb=$("$strata" --addr "$addr" stats | sed -n 's/^used_memory_cache:\([0-9]*\).*/\1/p')
block_cache_mb=$(echo "scale=1; $block_cache_mb / 1000000" | bc)
stop_server
file_mb=$(echo "scale=1; $(stat -c %s "$work/store.backup") / 1000000" | bc)
save_mbs=$(echo "$save_out" | sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p')
client_rss=$(echo "$save_out" | sed -n 's/.*peak RSS \([0-9.]*\) MB.*/\1/p')

echo "verifying ..." >&2
status_start=$(date +%s.%N)
timeout "$bound_s" "$strata" backup status "$work/store.backup" >"$work/status.txt"
status_s=$(echo "$(date +%s.%N) - $status_start" | bc)
status_mbs=$(echo "scale=1; $file_mb / $status_s" | bc)

echo "restoring ..." >&2
restore_out=$(timeout "$bound_s" "$strata" backup restore "$work/store.backup" --data-dir "$work/restored")
restore_mbs=$(echo "$restore_out" | sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p')
start_server "$work/restored"
restored_keys=$("$strata" --addr "$addr" stats | sed -n 's/^db0:keys=\([0-9]*\).*/\1/p')
stop_server
[ "$restored_keys" = "$dbsize" ] || { echo "restored $restored_keys keys, expected $dbsize" >&2; exit 1; }

{
    echo "# Backup and restore, $stamp"
    echo
    echo "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; $keys keys of $value_size random bytes; server --fsync never --cache-size-bytes $cache"
    [ -z "$cgroup_dir" ] || echo "The server ran in a memory cgroup of $memory_max_mb MiB (page cache included): peak $(cgroup_peak) MiB, OOM kills $(cgroup_ooms)."
    echo
    echo "| step | result |"
    echo "|---|---|"
    echo "| load (strata-bench, -c 8 -P 16) | $load_s s |"
    echo "| data directory | $data_mb MiB |"
    echo "| backup file | $file_mb MB, $dbsize keys |"
    echo "| save (first / second) | $save_mbs1 / $save_mbs MB/s |"
    echo "| client peak RSS during save | $client_rss MB |"
    echo "| server RSS: after a restart / peak during a first save / peak during a second save | $rss_before / $rss_peak1 / $rss_peak MB (block cache $block_cache_mb MB of $cache, compactions may run) |"
    echo "| status (read + verify) | $status_mbs MB/s |"
    echo "| restore | $restore_mbs MB/s |"
    echo
    echo '```'
    echo "$save_out"
    echo "$restore_out"
    echo '```'
} | tee "$report"
