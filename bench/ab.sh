#!/usr/bin/env bash
# A/B: two strata binaries side by side in one run, alternating which goes
# first in each round, redis-benchmark on 100,000 random keys (-r), both
# servers with --fsync always in their own temp dirs. Prints each round
# and the median requests/s of each, with the ratio B/A.
#
#   bench/ab.sh A_BINARY B_BINARY [rounds] [requests]   (defaults 5, 300000)
#
# For example, the build before a change against the one after it:
#   git worktree add /tmp/strata-before <commit>
#   (cd /tmp/strata-before && cargo build --release -p strata)
#   cargo build --release -p strata
#   bench/ab.sh /tmp/strata-before/target/release/strata target/release/strata
#
# Installs redis-tools through apt if redis-benchmark is missing. Bounded:
# every redis-benchmark run has a timeout; servers are stopped on exit.
set -euo pipefail

a_bin=${1:?usage: bench/ab.sh A_BINARY B_BINARY [rounds] [requests]}
b_bin=${2:?usage: bench/ab.sh A_BINARY B_BINARY [rounds] [requests]}
rounds=${3:-5}
requests=${4:-300000}
clients=50
keyspace=100000

if ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-tools with apt" >&2
    apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A port
for side in a b; do
    bin_var="${side}_bin"
    port[$side]=$(free_port)
    "${!bin_var}" server --listen "127.0.0.1:${port[$side]}" --text-listen off \
        --data-dir "$work/$side" --fsync always >"$work/$side.out" 2>"$work/$side.log" &
    pids+=($!)
done
for side in a b; do
    for _ in $(seq 100); do
        redis-benchmark -p "${port[$side]}" -t ping -n 1 -q >/dev/null 2>&1 && break
        sleep 0.1
    done
done

# One requests/s figure: bench <port> <test> <extra flags>.
bench() {
    timeout 600 redis-benchmark -p "$1" -t "$2" -n "$requests" -c "$clients" \
        -r "$keyspace" $3 --csv 2>/dev/null | tr -d '"' | awk -F, 'NR==2 {print $2}'
}

cases=("set|-P 16" "get|-P 16" "set|")
declare -A results
for round in $(seq "$rounds"); do
    order="a b"
    if (( round % 2 == 0 )); then order="b a"; fi
    for c in "${cases[@]}"; do
        test=${c%%|*}
        flags=${c#*|}
        for side in $order; do
            rps=$(bench "${port[$side]}" "$test" "$flags")
            results["$side|$c"]+="$rps "
            printf 'round %d %-4s %-6s %-6s %12s\n' "$round" "$side" "$test" "${flags:-}" "$rps"
        done
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo
printf '%-16s %12s %12s %8s\n' "test (-c $clients -r $keyspace)" "A median" "B median" "B/A"
for c in "${cases[@]}"; do
    a=$(echo "${results["a|$c"]}" | median)
    b=$(echo "${results["b|$c"]}" | median)
    awk -v name="${c%%|*} ${c#*|}" -v a="$a" -v b="$b" \
        'BEGIN {printf "%-16s %12.0f %12.0f %8.2f\n", name, a, b, b / a}'
done
