#!/usr/bin/env bash
# A/B: two strata builds side by side in one run, --fsync always, on
# 100,000 random keys (redis-benchmark -r) and -c 50, over several rounds
# with the order alternating; prints each cell's median over the rounds
# and strata÷baseline, that is B/A. A thin wrapper over bench/compare
# (which builds strata-compare and installs redis-benchmark if missing).
#
#   bench/ab.sh A_BINARY B_BINARY [rounds] [requests] [bench/compare options]
#   (defaults 5 rounds, 300000 requests per test)
#
# For example, the build before a change against the one after it:
#   git worktree add /tmp/strata-before <commit>
#   (cd /tmp/strata-before && cargo build --release -p strata)
#   cargo build --release -p strata
#   bench/ab.sh /tmp/strata-before/target/release/strata target/release/strata
set -euo pipefail

usage="usage: bench/ab.sh A_BINARY B_BINARY [rounds] [requests] [bench/compare options]"
a_bin=$(realpath -- "${1:?$usage}")
b_bin=$(realpath -- "${2:?$usage}")
shift 2
rounds=5
requests=300000
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then requests=$1; shift; fi
exec "$(dirname "$0")/compare" --strata "$b_bin" --baseline "$a_bin" --peers baseline \
    --levels always --loads redis-benchmark --rounds "$rounds" --requests "$requests" "$@"
