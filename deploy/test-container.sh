#!/usr/bin/env bash
# What of the image and the Kubernetes manifests can be tested without a
# container runtime or a cluster: the release binary run as the image runs
# it, and the StatefulSet's pods simulated as local processes.
#
#  1. The image: `strata server` (its ENTRYPOINT and CMD) with the
#     Dockerfile's ENV (read from the Dockerfile; ports made ephemeral, the
#     data directory a temporary one), as the image's non-root uid when run
#     as root: it answers PING, its HEALTHCHECK command passes, and it exits 0
#     on SIGTERM; the health check fails once it is gone.
#  2. The StatefulSet: three pods started by `strata-k8s start` as the
#     manifests start them (POD_NAME, the ConfigMap's variables) form a
#     cluster; a fourth (scaling up) joins under its advertised name; the
#     pre-stop hook hands leadership over; scaling down (remove-node), a
#     volume started under another id is refused, and a fresh one joins as
#     a new node.
# Usage: deploy/test-container.sh [path/to/strata]  (default: the release
# build, target/release/strata). Bounded: every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/strata}")
[ -x "$bin" ] || { echo "no strata binary at $bin (cargo build --release)"; exit 1; }

work=$(mktemp -d)
chmod 0755 "$work"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# `strata`, `strata-k8s` and `strata-healthcheck` as the image has them.
mkdir -p "$work/bin"
cp "$bin" "$work/bin/strata"
cp deploy/container/strata-k8s deploy/container/strata-healthcheck "$work/bin/"
chmod 0755 "$work/bin"/*
export PATH="$work/bin:$PATH"
# Nothing of the caller's configuration leaks in.
while IFS='=' read -r name _; do unset "$name"; done < <(env | grep '^STRATA_' || true)

passed=0
pass() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; for f in "$work"/*.log; do echo "--- $f"; tail -n 30 "$f"; done; exit 1; }

# Waits (at most 30 s) for the `ready` line in $1; prints that line.
wait_ready() {
  local out=$1 pid=$2 line=""
  for _ in $(seq 1 300); do
    line=$(grep -m1 '^ready ' "$out" 2>/dev/null || true)
    [ -n "$line" ] && { echo "$line"; return 0; }
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
# Waits (at most 20 s) for the process to exit; sets exit_code (`timeout`
# if it did not). Not in $(...): only this shell can wait for its children.
wait_exit() {
  local pid=$1
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then exit_code=timeout; return; fi
  exit_code=0
  wait "$pid" || exit_code=$?
}
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# ---------------------------------------------------------------- 1. image
grep -q '^ENTRYPOINT \["strata"\]$' deploy/Dockerfile || fail "ENTRYPOINT is not [\"strata\"]"
grep -q '^CMD \["server"\]$' deploy/Dockerfile || fail "CMD is not [\"server\"]"
healthcheck=$(sed -n 's/^ *CMD \["strata-healthcheck", "\([^"]*\)"\]$/\1/p' deploy/Dockerfile)
[ -n "$healthcheck" ] || fail "no HEALTHCHECK CMD [\"strata-healthcheck\", PATH] in the Dockerfile"
uid=$(sed -n 's/^USER \([0-9]*\):[0-9]*$/\1/p' deploy/Dockerfile)
[ -n "$uid" ] || fail "no numeric USER uid:gid in the Dockerfile"

# The Dockerfile's ENV, as KEY=VALUE lines.
image_env=$(python3 - <<'PY'
import re, shlex
text = open("deploy/Dockerfile").read().replace("\\\n", " ")
for line in text.splitlines():
    if line.startswith("ENV "):
        for pair in shlex.split(line[4:]):
            print(pair)
PY
)
data="$work/data"
mkdir -p "$data"
env_args=()
http_supported=no
"$bin" server --help | grep -q -- '--http-listen' && http_supported=yes
while IFS='=' read -r name value; do
  case $name in
    STRATA_DATA_DIR) value=$data ;;
    *) value=${value/#0.0.0.0:*/0.0.0.0:0} ;;
  esac
  env_args+=("$name=$value")
done <<<"$image_env"
run_as=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  chown "$uid:$uid" "$data"
  run_as=(setpriv "--reuid=$uid" "--regid=$uid" --clear-groups)
  echo "running the image's command as uid $uid"
else
  echo "not root: running the image's command as $(id -un)"
fi
(cd "$data" && exec env "${env_args[@]}" "${run_as[@]}" strata server) \
  >"$work/image.out" 2>"$work/image.log" &
pid=$!
pids+=("$pid")
ready=$(wait_ready "$work/image.out" "$pid") || fail "the image's command printed no ready line"
resp=$(field "$ready" resp)
exec 3<>"/dev/tcp/127.0.0.1/${resp##*:}"
printf 'PING\r\n' >&3
IFS= read -r -t 5 pong <&3 || true
exec 3<&-
[ "$pong" = $'+PONG\r' ] || fail "PING on $resp answered '$pong'"
pass "the image's command: ready ($ready), PING answered, as the image's user"
if [ "$http_supported" = yes ]; then
  http=$(field "$ready" http)
  [ -n "$http" ] || fail "the ready line names no http= address: $ready"
  STRATA_HTTP_LISTEN=$http strata-healthcheck "$healthcheck" \
    || fail "the HEALTHCHECK command failed against a healthy server"
  STRATA_HTTP_LISTEN=$http strata-healthcheck /readyz || fail "/readyz on a single node"
  if STRATA_HTTP_LISTEN=$http strata-healthcheck /no-such-path 2>/dev/null; then
    fail "the health check passed on a 404"
  fi
  pass "HEALTHCHECK ($healthcheck) passes on a healthy server, fails on a 404"
else
  echo "SKIPPED: the HEALTHCHECK (this build has no --http-listen yet)"
fi
kill -TERM "$pid"
wait_exit "$pid"; code=$exit_code
[ "$code" = 0 ] || fail "the image's command exited '$code' on SIGTERM"
pass "SIGTERM: exit 0"
if [ "$http_supported" = yes ]; then
  if STRATA_HTTP_LISTEN=$http strata-healthcheck "$healthcheck" 2>/dev/null; then
    fail "the health check passed with the server gone"
  fi
  pass "the health check fails once the server is gone"
fi

# ----------------------------------------------------------- 2. StatefulSet
read -r -a peer_ports <<<"$(free_ports 5)"
secret="$work/cluster-secret"
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$secret"
initial="1=127.0.0.1:${peer_ports[0]},2=127.0.0.1:${peer_ports[1]},3=127.0.0.1:${peer_ports[2]}"
declare -A pod_pid pod_resp
# start_pod NAME PEER_PORT [VAR=VALUE...]: strata-k8s start, as the
# StatefulSet's container command, with the ConfigMap's variables (local
# addresses in place of the pods' DNS names); waits for its ready line.
start_pod() {
  local name=$1 port=$2
  shift 2
  mkdir -p "$work/$name"
  env POD_NAME="$name" \
    STRATA_INITIAL_CLUSTER="$initial" STRATA_JOIN="127.0.0.1:${peer_ports[0]}" \
    STRATA_NODE_IDS="${NODE_IDS:-}" STRATA_PEER_LISTEN="127.0.0.1:$port" \
    STRATA_LISTEN=127.0.0.1:0 STRATA_TEXT_LISTEN=off STRATA_HTTP_LISTEN=127.0.0.1:0 \
    STRATA_DATA_DIR="$work/$name/data" STRATA_CLUSTER_SECRET_FILE="$secret" \
    STRATA_HEARTBEAT_MS=50 STRATA_ELECTION_TIMEOUT_MS=300 "$@" \
    strata-k8s start >"$work/$name.out" 2>"$work/$name.log" &
  pod_pid[$name]=$!
  pids+=("$!")
}
await_pod() {
  local ready
  ready=$(wait_ready "$work/$1.out" "${pod_pid[$1]}") || fail "pod $1 printed no ready line"
  pod_resp[$1]=$(field "$ready" resp)
}
cli() { local pod=$1; shift; strata --addr "${pod_resp[$pod]}" "$@"; }
# Waits (at most 30 s) until `strata cluster leader` on POD names a leader
# other than $2 (empty: any); prints its id.
wait_leader() {
  local line
  for _ in $(seq 1 300); do
    line=$(cli "$1" cluster leader 2>/dev/null || true)
    if [ -n "$line" ] && [ "${line%% *}" != "${2:-}" ]; then echo "${line%% *}"; return 0; fi
    sleep 0.1
  done
  return 1
}
# Waits (at most 60 s) until POD's `cluster nodes` has a line matching $2.
wait_member() {
  for _ in $(seq 1 600); do
    cli "$1" cluster nodes 2>/dev/null | grep -Eq "$2" && return 0
    sleep 0.1
  done
  return 1
}

for i in 0 1 2; do start_pod "strata-$i" "${peer_ports[$i]}"; done
for i in 0 1 2; do await_pod "strata-$i"; done
leader=$(wait_leader strata-0) || fail "the three founding pods elected no leader"
for i in 0 1 2; do
  grep -q "node $((i + 1)), a founding member" "$work/strata-$i.log" \
    || fail "strata-$i did not start as founding node $((i + 1))"
done
cli strata-1 put greeting hello >/dev/null || fail "a write through strata-1"
pass "strata-0..2 are founding nodes 1..3 and elected node $leader"

# Scaling up: strata-3 is node 4; it joins under its advertised name.
start_pod strata-3 "${peer_ports[3]}" STRATA_PEER_ADVERTISE="localhost:${peer_ports[3]}"
await_pod strata-3
grep -q "node 4, joining through" "$work/strata-3.log" || fail "strata-3 did not join as node 4"
wait_member strata-0 "^4 localhost:${peer_ports[3]} .* voter " \
  || fail "node 4 is not a voter at localhost:${peer_ports[3]}: $(cli strata-0 cluster nodes)"
[ "$(cli strata-3 get greeting)" = hello ] || fail "node 4 does not read what was written before"
pass "scaling up: strata-3 joined as voter 4, known as localhost:${peer_ports[3]}"

# The pre-stop hook on the leader's pod hands leadership over.
leader_pod="strata-$((leader - 1))"
STRATA_ADDR=${pod_resp[$leader_pod]} STRATA_PRE_STOP_DELAY_S=0 strata-k8s pre-stop \
  || fail "the pre-stop hook failed"
new_leader=$(wait_leader strata-3 "$leader") || fail "no new leader after the pre-stop hook"
pass "pre-stop on $leader_pod: node $leader handed leadership to node $new_leader"

# Scaling down: remove node 4, then stop its pod.
cli strata-0 cluster remove-node 4 >/dev/null || fail "cluster remove-node 4"
kill -TERM "${pod_pid[strata-3]}"
wait_exit "${pod_pid[strata-3]}"; code=$exit_code
[ "$code" = 0 ] || fail "strata-3 exited '$code' on SIGTERM"
cli strata-0 cluster nodes | grep -q '^4 ' && fail "node 4 is still a member"
pass "scaling down: node 4 removed, its pod stopped (exit 0)"

# Ordinal 3 comes back as node 5 (STRATA_NODE_IDS): on the old volume it is
# refused, on a fresh one it joins.
NODE_IDS="3=5" start_pod strata-3 "${peer_ports[4]}" STRATA_PEER_ADVERTISE="localhost:${peer_ports[4]}"
wait_exit "${pod_pid[strata-3]}"; code=$exit_code
[ "$code" = 2 ] || fail "node 5 on node 4's volume exited '$code', not 2"
grep -q "holds the data of node 4" "$work/strata-3.log" || fail "no explanation for the refused volume"
rm -rf "$work/strata-3/data"
NODE_IDS="3=5" start_pod strata-3 "${peer_ports[4]}" STRATA_PEER_ADVERTISE="localhost:${peer_ports[4]}"
await_pod strata-3
wait_member strata-0 "^5 localhost:${peer_ports[4]} .* voter " || fail "node 5 did not join"
pass "node 4's volume under id 5 is refused; a fresh volume joins as node 5"

for name in strata-0 strata-1 strata-2 strata-3; do kill -TERM "${pod_pid[$name]}"; done
for name in strata-0 strata-1 strata-2 strata-3; do
  wait_exit "${pod_pid[$name]}"; code=$exit_code
  [ "$code" = 0 ] || fail "$name exited '$code' on SIGTERM"
done
pass "every pod exits 0 on SIGTERM"
echo "deploy/test-container.sh: $passed passed, 0 failed"
