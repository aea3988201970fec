#!/usr/bin/env bash
# Side by side: redis-benchmark against strata --fsync always and against
# redis-server with appendonly yes + appendfsync always, in the same run,
# on loopback, each with its own temp dir. Prints requests/s and ratios.
#
#   bench/redis-side-by-side.sh [requests]      (default 200000)
#
# Installs redis-server / redis-tools through apt if they are missing.
# Bounded: every redis-benchmark run has a timeout; servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${1:-200000}
clients=50
tests=set,get,mset

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server and redis-tools with apt" >&2
    apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
fi

cargo build --release -p strata >&2
strata=target/release/strata

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

strata_port=$(free_port)
"$strata" server --listen "127.0.0.1:$strata_port" --text-listen off \
    --data-dir "$work/strata" --fsync always >"$work/strata.out" 2>"$work/strata.log" &
pids+=($!)
redis_port=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work/redis" --save '' \
    --appendonly yes --appendfsync always --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)

for port in "$strata_port" "$redis_port"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
done

# Prints "<test>,<requests per second>" lines (the test name has spaces).
run() {
    timeout 600 redis-benchmark -p "$1" -t "$tests" -n "$requests" -c "$clients" $2 --csv 2>/dev/null \
        | tr -d '"' | awk -F, 'NR>1 {print $1 "," $2}'
}

printf '%-32s %12s %12s %8s\n' "test (-c $clients)" "strata rps" "redis rps" "ratio"
for pipeline in "" "-P 16"; do
    paste -d, <(run "$strata_port" "$pipeline") <(run "$redis_port" "$pipeline") |
        awk -F, -v p="${pipeline:-no pipeline}" '{printf "%-32s %12.0f %12.0f %8.2f\n", $1" ("p")", $2, $4, $2/$4}'
done
echo
echo "strata group commit: $(redis-cli -p "$strata_port" info persistence | grep -E 'strata_(group_commits|mutations_committed|fsync_avg_us):' | tr -d '\r' | tr '\n' ' ')"
