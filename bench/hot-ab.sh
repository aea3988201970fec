#!/usr/bin/env bash
# One redis-benchmark test, long, on two strata builds side by side: both
# servers start once (--fsync always, fresh temp data dirs, 100,000 random
# keys pre-loaded), then the test alternates between them, R rounds, and
# each round's B÷A is printed with the median. For a hot path where
# bench/ab.sh's short runs (0.2 s for GET -P 16) leave the answer in the
# noise.
#
#   bench/hot-ab.sh A_BINARY B_BINARY [rounds] [requests] [redis-benchmark args]
#   (defaults 6 rounds, 3000000 requests, "-t get -P 16")
#
# For example: bench/hot-ab.sh /tmp/strata-before target/release/strata 6 3000000 -t set
set -euo pipefail

usage="usage: bench/hot-ab.sh A_BINARY B_BINARY [rounds] [requests] [redis-benchmark args]"
a_bin=$(realpath -- "${1:?$usage}")
b_bin=$(realpath -- "${2:?$usage}")
shift 2
rounds=6
requests=3000000
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then requests=$1; shift; fi
test_args=("$@")
[ "${#test_args[@]}" -gt 0 ] || test_args=(-t get -P 16)
command -v redis-benchmark >/dev/null || { echo "redis-benchmark is needed (apt-get install redis-tools)" >&2; exit 2; }

work=$(mktemp -d /tmp/strata-hot-ab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# start LABEL BINARY: a server on an ephemeral port; prints the port.
start() {
    local label=$1 bin=$2 port="" i
    for v in $(env | sed -n 's/^\(STRATA_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
    # Ephemeral, not the default HTTP port (an older build ignores it).
    export STRATA_HTTP_LISTEN=127.0.0.1:0
    "$bin" server --listen 127.0.0.1:0 --text-listen off --data-dir "$work/$label" \
        --fsync always >"$work/$label.out" 2>"$work/$label.err" &
    pids+=($!)
    for i in $(seq 300); do  # 30 s at most
        port=$(sed -n 's/^ready resp=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/$label.out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$work/$label.err" >&2; echo "$label did not start" >&2; exit 1; }
    echo "$port"
}

a_port=$(start A "$a_bin")
b_port=$(start B "$b_bin")
for port in "$a_port" "$b_port"; do
    timeout 120 redis-benchmark -p "$port" -t set -r 100000 -n 300000 -P 16 -c 50 -q >/dev/null
done

rps() {
    timeout 300 redis-benchmark -p "$1" -r 100000 -n "$requests" -c 50 --csv "${test_args[@]}" |
        tr -d '"' | awk -F, 'NR > 1 && $2 ~ /^[0-9.]+$/ {print $2; exit}'
}

echo "redis-benchmark ${test_args[*]} -n $requests -r 100000 -c 50; A = $a_bin, B = $b_bin"
ratios=()
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then a=$(rps "$a_port"); b=$(rps "$b_port")
    else b=$(rps "$b_port"); a=$(rps "$a_port"); fi
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')
    ratios+=("$ratio")
    echo "round $r: A $a rps, B $b rps, B÷A $ratio"
done
printf '%s\n' "${ratios[@]}" | sort -g |
    awk '{x[NR]=$1} END {m = NR % 2 ? x[(NR+1)/2] : (x[NR/2] + x[NR/2+1]) / 2; printf "median B÷A over %d rounds: %.3f\n", NR, m}'
