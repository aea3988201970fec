#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: for a hot-path
# change whose effect (a few percent) is below the wall-clock noise of this
# VM. The count is repeatable whatever else the machine runs, so builds can
# be compared one after the other.
#
#   bench/instructions.sh BINARY... [-- redis-benchmark args]
#   (default args: -t get -P 16; 200,000 measured requests)
#
# Per binary: a server (--fsync always, fresh temp data dir) is loaded with
# 100,000 random keys, restarted under callgrind, warmed with one pass of
# the test (the read cache fills), then the counters are zeroed and the
# measured pass runs. Prints the server's instructions per request (all
# threads: parsing, execution, storage, the writer, tokio, syscall entry).
set -euo pipefail

usage="usage: bench/instructions.sh BINARY... [-- redis-benchmark args]"
bins=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do bins+=("$(realpath -- "$1")"); shift; done
[ "${1:-}" = "--" ] && shift
test_args=("$@")
[ "${#test_args[@]}" -gt 0 ] || test_args=(-t get -P 16)
[ "${#bins[@]}" -gt 0 ] || { echo "$usage" >&2; exit 2; }
for tool in valgrind callgrind_control callgrind_annotate redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install valgrind redis-tools)" >&2; exit 2; }
done
requests=200000

work=$(mktemp -d /tmp/strata-instructions.XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start BINARY OUT [wrapper...]: a server on an ephemeral port, its port
# in $port. (Not run in $(...): a subshell would lose $pid.)
start() {
    local bin=$1 out=$2 i
    port=""
    shift 2
    # The HTTP listener off through the environment: builds from before it
    # ignore the variable.
    STRATA_HTTP_LISTEN=off "$@" "$bin" server --listen 127.0.0.1:0 --text-listen off \
        --data-dir "$work/data" --fsync always >"$out" 2>"$out.err" &
    pid=$!
    for i in $(seq 600); do  # 60 s at most (callgrind starts slowly)
        port=$(sed -n 's/^ready resp=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$out.err" >&2; echo "$bin did not start" >&2; exit 1; }
}

load() {
    timeout 600 redis-benchmark -p "$1" -r 100000 -n "$requests" -c 50 -q "${test_args[@]}" >/dev/null
}

echo "redis-benchmark ${test_args[*]} -n $requests -r 100000 -c 50, instructions per request:"
for bin in "${bins[@]}"; do
    rm -rf "$work/data"
    start "$bin" "$work/plain.out"
    timeout 120 redis-benchmark -p "$port" -t set -r 100000 -n 300000 -P 16 -c 50 -q >/dev/null
    kill "$pid"; wait "$pid" || true; pid=""
    start "$bin" "$work/cg.out" valgrind --tool=callgrind --dump-instr=no \
        --callgrind-out-file="$work/callgrind.out"
    load "$port"
    callgrind_control -z "$pid" >/dev/null 2>&1
    load "$port"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" || true; pid=""
    total=$(callgrind_annotate "$work/callgrind.out.1" 2>/dev/null |
        sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
    awk -v t="$total" -v n="$requests" -v b="$bin" 'BEGIN {printf "%8.0f  %s\n", t / n, b}'
    rm -f "$work"/callgrind.out*
done
