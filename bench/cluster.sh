#!/usr/bin/env bash
# Cluster mode (Raft, 3 nodes on this one machine) against a single node:
#
#   A. throughput: redis-benchmark -c 50 (SET -P 16, GET -P 16, SET without
#      pipelining) against a single node, then against the leader and a
#      follower of a fresh 3-node cluster, all --fsync always. R rounds, the
#      order (single first / cluster first, leader first / follower first)
#      alternating; ratios per round, medians over the rounds. Also the
#      CPU time (user + system, /proc/<pid>/stat) the server processes spent
#      per request: the benchmarked node's own, and all nodes' together.
#   B. failover: a probe client (Python, open loop: a SET every 5 ms, each on
#      an idle connection to a follower, up to 64 connections) runs while the
#      leader gets kill -9 (K times) or SIGTERM (K times). A sample is the time
#      from the signal to the first OK of a SET *sent after* the signal. The
#      node is then restarted on its data dir and ports, and we wait until it
#      is a caught-up follower again.
#
#   bench/cluster.sh [--rounds R] [--requests N] [--failovers K]
#                    [--no-pipeline-requests M] [--keep-logs] [--no-build]
#                    [--cluster-arg ARG]... [--binary PATH]
#   defaults: R=3, N=200000, K=10, M=N (SET without pipelining);
#   --rounds 0 or --failovers 0 skips that part; --cluster-arg passes a flag
#   to every cluster node, e.g. --cluster-arg=--election-timeout-ms=200;
#   --binary runs that strata build instead of building this checkout's
#   (a before/after comparison: bench/cluster-ab.sh).
#
# Results: a markdown table on stdout and in bench/results/cluster-<ts>.md.
# Server logs live in the temp dir; they are copied to
# bench/results/cluster-<ts>-logs/ if the script fails or sees an anomaly
# (a failover over 5 s, a benchmark that timed out or saw errors, ...), or
# with --keep-logs. Every wait is bounded; every process this script starts
# is killed (-9, by PID) on exit. Defaults take about 6-10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
requests=200000
failovers=10
np_requests=""
keep_logs=0
no_build=0
cluster_args=()
binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --requests) requests=$2; shift 2 ;;
        --failovers) failovers=$2; shift 2 ;;
        --no-pipeline-requests) np_requests=$2; shift 2 ;;
        --keep-logs) keep_logs=1; shift ;;
        --no-build) no_build=1; shift ;;
        --cluster-arg) cluster_args+=("$2"); shift 2 ;;
        --cluster-arg=*) cluster_args+=("${1#--cluster-arg=}"); shift ;;
        --binary) binary=$(realpath -- "$2"); shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
np_requests=${np_requests:-$requests}
clients=50
bench_timeout=300        # one redis-benchmark run
failover_limit_ms=5000   # a failover slower than this is an anomaly

if ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "installing redis-tools with apt" >&2
    apt-get update -qq && apt-get install -y -qq redis-tools >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

if [ -n "$binary" ]; then
    [ -x "$binary" ] || { echo "--binary $binary: not an executable" >&2; exit 2; }
    strata=$binary
else
    [ "$no_build" -eq 1 ] || cargo build --release -p strata --bin strata >&2
    strata=$PWD/target/release/strata
fi
# Settings must come from the flags below only.
for v in $(env | sed -n 's/^\(STRATA_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
# The HTTP listener on an ephemeral port: nodes on one host must not all
# ask for its default (7382); an older build ignores the variable.
export STRATA_HTTP_LISTEN=127.0.0.1:0

mkdir -p bench/results
stamp=$(date -u +%Y%m%d-%H%M%S)
report=bench/results/cluster-$stamp.md
logs_dest=bench/results/cluster-$stamp-logs
work=$(mktemp -d /tmp/strata-cluster.XXXXXX)
mkdir -p "$work/logs"

all_pids=()          # every process started, for the trap
declare -A pid=()    # node id (0 = the single node) -> running pid
anomalies=()

cleanup() {
    local rc=$?
    trap - EXIT
    for p in "${all_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${all_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ] || [ "${#anomalies[@]}" -gt 0 ] || [ "$keep_logs" -eq 1 ]; then
        mkdir -p "$logs_dest"
        cp -r "$work/logs/." "$logs_dest/" 2>/dev/null || true
        echo "server logs copied to $logs_dest" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
anomaly() {
    anomalies+=("$(date -u +%H:%M:%S) $*")
    log "ANOMALY: $*"
}
die() { log "FAIL: $*"; exit 1; }

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }

median() {
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{a[NR]=$1} END {if (NR==0) print "NA"; else if (NR%2) print a[(NR+1)/2]; else printf "%.15g\n", (a[NR/2]+a[NR/2+1])/2}'
}
median2() { awk -v x="$(median "$@")" 'BEGIN {if (x == "NA") print x; else printf "%.2f\n", x}'; }
maximum() {
    local x
    for x in "$@"; do case "$x" in ''|*[!0-9.]*) echo "$x"; return ;; esac; done
    printf '%s\n' "$@" | sort -g | tail -1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a/b; else print "NA"}'; }
fmt_int() { awk -v x="$1" 'BEGIN {if (x !~ /^[0-9.]+$/) {print x; exit} s=sprintf("%.0f", x); o=""; while (length(s)>3) {o=","substr(s,length(s)-2)o; s=substr(s,1,length(s)-3)} print s o}'; }

# Seven distinct free loopback ports, all held at once while choosing.
read -r single_port c1 c2 c3 p1 p2 p3 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(7)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
declare -A client_port=([0]=$single_port [1]=$c1 [2]=$c2 [3]=$c3)
declare -A peer_port=([1]=$p1 [2]=$p2 [3]=$p3)
initial_cluster="1=127.0.0.1:$p1,2=127.0.0.1:$p2,3=127.0.0.1:$p3"
incarnation=0

# wait_ready OUTFILE PID: until the server prints its ready line (30 s).
wait_ready() {
    local out=$1 p=$2 i
    for i in $(seq 300); do
        grep -q '^ready ' "$out" 2>/dev/null && return 0
        kill -0 "$p" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start_node ID DATA_ROOT: node 0 is the single (non-cluster) node.
start_node() {
    local id=$1 root=$2 out
    incarnation=$((incarnation + 1))
    out=$work/logs/node$id.$incarnation.out
    echo "=== $(date -u +%FT%T.%N) start node $id (incarnation $incarnation, data $root/n$id)" >>"$work/logs/node$id.log"
    local args=(server --listen "127.0.0.1:${client_port[$id]}" --text-listen off
        --data-dir "$root/n$id" --fsync always)
    if [ "$id" -ne 0 ]; then
        args+=(--node-id "$id" --peer-listen "127.0.0.1:${peer_port[$id]}"
            --initial-cluster "$initial_cluster" ${cluster_args[@]+"${cluster_args[@]}"})
    fi
    "$strata" "${args[@]}" >"$out" 2>>"$work/logs/node$id.log" &
    pid[$id]=$!
    all_pids+=($!)
    wait_ready "$out" "${pid[$id]}" || die "node $id did not start (log: $logs_dest/node$id.log): $(tail -3 "$work/logs/node$id.log")"
}

# kill9 ID: kill -9 and reap.
kill9() {
    local id=$1
    local how="had already exited"
    kill -0 "${pid[$id]}" 2>/dev/null && [ "$(awk '{print $3}' "/proc/${pid[$id]}/stat" 2>/dev/null)" != Z ] &&
        how="killed by the script (kill -9)"
    kill -9 "${pid[$id]}" 2>/dev/null || true
    wait "${pid[$id]}" 2>/dev/null || true
    echo "=== $(date -u +%FT%T.%N) node $id $how" >>"$work/logs/node$id.log"
    unset "pid[$id]"
}

# field PORT NAME: one value of CLUSTER INFO (empty if no answer).
field() {
    timeout 2 redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r' |
        awk -F: -v f="$2" '$1 == f {print $2}' || true
}

# wait_leader [SECONDS]: prints the leader id once some running node is
# leader and every running node names it.
wait_leader() {
    local limit=${1:-30} deadline leader id ok
    deadline=$(( $(now_ms) + limit * 1000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        leader=""
        for id in 1 2 3; do
            [ -n "${pid[$id]:-}" ] || continue
            if [ "$(field "${client_port[$id]}" cluster_role)" = leader ]; then leader=$id; fi
        done
        if [ -n "$leader" ]; then
            ok=1
            for id in 1 2 3; do
                [ -n "${pid[$id]:-}" ] || continue
                [ "$(field "${client_port[$id]}" cluster_leader_id)" = "$leader" ] || ok=0
            done
            if [ "$ok" -eq 1 ]; then echo "$leader"; return 0; fi
        fi
        sleep 0.05
    done
    return 1
}

# first_follower LEADER: the lowest running node id that is not LEADER.
first_follower() {
    local id
    for id in 1 2 3; do
        [ "$id" != "$1" ] && [ -n "${pid[$id]:-}" ] && { echo "$id"; return 0; }
    done
    return 1
}

# bench_rps PORT TEST PIPELINE REQUESTS LABEL: sets $bench_result to
# requests/s, or NA (not in a subshell: it may record an anomaly).
bench_rps() {
    local port=$1 test=$2 pipeline=$3 n=$4 label=$5 out errs rps
    local args=(-h 127.0.0.1 -p "$port" -t "$test" -n "$n" -c "$clients" --csv)
    [ "$pipeline" -gt 1 ] && args+=(-P "$pipeline")
    out=$(timeout "$bench_timeout" redis-benchmark "${args[@]}" 2>"$work/logs/bench.err") || true
    cat "$work/logs/bench.err" >>"$work/logs/bench-stderr.log"
    rps=$(printf '%s\n' "$out" | tr -d '"' | awk -F, 'NR > 1 && $2 ~ /^[0-9.]+$/ {print $2; exit}')
    errs=$(grep -c -i 'error' "$work/logs/bench.err" || true)
    if [ -z "$rps" ]; then
        anomaly "$label: redis-benchmark gave no result (timeout ${bench_timeout}s or failure): $(head -c 300 "$work/logs/bench.err")"
        rps=NA
    elif [ "${errs:-0}" -gt 0 ]; then
        anomaly "$label: redis-benchmark printed $errs error lines, e.g. $(grep -i -m1 error "$work/logs/bench.err")"
    fi
    bench_result=$rps
}

tests=("set 16" "get 16" "set 1")
test_name() {
    case "$1" in
        "set 16") echo 'SET `-P 16`' ;;
        "get 16") echo 'GET `-P 16` (ReadIndex)' ;;
        "set 1") echo 'SET, no pipelining' ;;
    esac
}
declare -A rps=()    # "<test>|<target>|<round>" -> requests/s
declare -A cpu=()    # "<test>|<target>|<round>" -> CPU µs per request, the node benchmarked
declare -A cpu_all=() # same key -> CPU µs per request, all nodes of the deployment
clk_tck=$(getconf CLK_TCK)

# cpu_ticks PID...: user + system CPU time of the processes, in clock ticks.
cpu_ticks() {
    local p total=0 t
    for p in "$@"; do
        t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
# per_req TICKS N: microseconds of CPU per request.
per_req() { awk -v t="$1" -v n="$2" -v hz="$clk_tck" 'BEGIN {if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "NA"}'; }

# run_tests TARGET PORT ROUND NODE PIDS...: NODE is the benchmarked node's
# pid, PIDS every node of the deployment (for CPU per request).
run_tests() {
    local target=$1 port=$2 r=$3 node=$4 t n c0 a0
    shift 4
    for t in "${tests[@]}"; do
        n=$requests
        [ "${t#* }" = 1 ] && n=$np_requests
        c0=$(cpu_ticks "$node"); a0=$(cpu_ticks "$@")
        bench_rps "$port" "${t% *}" "${t#* }" "$n" "round $r $target $t"
        cpu["$t|$target|$r"]=$(per_req $(($(cpu_ticks "$node") - c0)) "$n")
        cpu_all["$t|$target|$r"]=$(per_req $(($(cpu_ticks "$@") - a0)) "$n")
        rps["$t|$target|$r"]=$bench_result
        log "round $r: $target $(test_name "$t"): ${rps["$t|$target|$r"]} rps"
    done
}

round_single() {
    local r=$1 root=$work/r$r-single
    start_node 0 "$root"
    run_tests single "${client_port[0]}" "$r" "${pid[0]}" "${pid[0]}"
    kill9 0
    rm -rf "$root"
}

round_cluster() {
    local r=$1 root=$work/r$r-cluster leader follower id
    for id in 1 2 3; do start_node "$id" "$root"; done
    leader=$(wait_leader 30) || die "round $r: no leader within 30 s"
    follower=$(first_follower "$leader")
    log "round $r: cluster leader is node $leader, benchmarking follower node $follower too"
    local all=("${pid[1]}" "${pid[2]}" "${pid[3]}")
    if [ $((r % 2)) -eq 1 ]; then
        run_tests leader "${client_port[$leader]}" "$r" "${pid[$leader]}" "${all[@]}"
        run_tests follower "${client_port[$follower]}" "$r" "${pid[$follower]}" "${all[@]}"
    else
        run_tests follower "${client_port[$follower]}" "$r" "${pid[$follower]}" "${all[@]}"
        run_tests leader "${client_port[$leader]}" "$r" "${pid[$leader]}" "${all[@]}"
    fi
    for id in 1 2 3; do kill9 "$id"; done
    rm -rf "$root"
}

started=$(now_ms)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $work; ports: single ${client_port[0]}, nodes ${c1},${c2},${c3}, peers ${p1},${p2},${p3}"
log "A. throughput: $rounds rounds, -n $requests (no pipelining: -n $np_requests), -c $clients"
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then round_single "$r"; round_cluster "$r"
    else round_cluster "$r"; round_single "$r"; fi
done

# ---------------------------------------------------------------- failover
cat >"$work/probe.py" <<'EOF'
# probe.py PORT PID SIGNAL OUT LOG: SETs to PORT in open loop, signals PID,
# reports when the first SET sent after the signal is acknowledged and when
# PID exited; appends a marker line to LOG (the signalled node's log).
import json, os, selectors, signal, socket, sys, time
from datetime import datetime, timezone

port, target, signame, out, logpath = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
TICK, CAP, WARMUP, LIMIT, TAIL, REQ_TIMEOUT = 0.005, 64, 0.5, 20.0, 0.3, 10.0
sel = selectors.DefaultSelector()
idle, busy = [], {}            # busy: sock -> [sent_at, buffer, seq]
events = []                    # (sent_at, done_at, ok, message)
seq = 0
exit_t = None                  # when PID became a zombie (it is not our child)

def check_exit():
    global exit_t
    if exit_t is not None:
        return
    try:
        with open("/proc/%d/stat" % target) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = "gone"
    if state in ("Z", "X", "gone"):
        exit_t = time.monotonic()

def connect():
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
    except OSError as e:
        events.append((time.monotonic(), time.monotonic(), False, "connect: " + str(e)))
        return None
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    return s

def send():
    global seq
    s = idle.pop() if idle else (connect() if len(busy) < CAP else None)
    if s is None:
        return
    seq += 1
    k, v = b"probe:%d" % seq, b"%d" % seq
    msg = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
    t = time.monotonic()
    try:
        s.sendall(msg)
    except OSError as e:
        events.append((t, time.monotonic(), False, "send: " + str(e)))
        sel.unregister(s); s.close()
        return
    busy[s] = [t, b"", seq]

def drop(s, why):
    if s in busy:
        events.append((busy.pop(s)[0], time.monotonic(), False, why))
    elif s in idle:
        idle.remove(s)
    sel.unregister(s); s.close()

def poll(timeout):
    check_exit()
    for key, _ in sel.select(timeout):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError as e:
            drop(s, "recv: " + str(e)); continue
        if not data:
            drop(s, "connection closed"); continue
        if s not in busy:
            continue
        st = busy[s]
        st[1] += data
        if b"\r\n" in st[1]:
            line = st[1].split(b"\r\n", 1)[0].decode(errors="replace")
            del busy[s]
            events.append((st[0], time.monotonic(), line == "+OK", line[:120]))
            idle.append(s)
    now = time.monotonic()
    for s, st in list(busy.items()):
        if now - st[0] > REQ_TIMEOUT:
            drop(s, "no reply in %.0f s" % REQ_TIMEOUT)

def run_until(pred, deadline):
    nxt = time.monotonic()
    while not pred() and time.monotonic() < deadline:
        now = time.monotonic()
        if now >= nxt:
            send(); nxt += TICK
            if nxt < now: nxt = now + TICK
        poll(max(0.0, min(nxt - time.monotonic(), 0.005)))

start = time.monotonic()
oks = lambda since: sum(1 for e in events if e[2] and e[0] >= since)
run_until(lambda: time.monotonic() - start >= WARMUP and oks(start) >= 20, start + 10.0)
warm_ok = oks(start)
result = {"warmup_ok": warm_ok, "warmup_err": sum(1 for e in events if not e[2])}
if warm_ok == 0:
    result["error"] = "no successful write before the signal: %s" % (events[-1][3] if events else "no reply")
    json.dump(result, open(out, "w")); sys.exit(0)
last_ok_before = max(e[1] for e in events if e[2])
t_sig = time.monotonic()
os.kill(target, getattr(signal, "SIG" + signame))
with open(logpath, "a") as f:
    f.write("=== %s probe sent SIG%s to this node (the leader)\n" % (datetime.now(timezone.utc).isoformat(), signame))
first = lambda: [e for e in events if e[2] and e[0] >= t_sig]
run_until(lambda: bool(first()), t_sig + LIMIT)
got = first()
if got:
    t_first = min(e[1] for e in got)
    tail_end = time.monotonic() + TAIL
    # Go on a little, and (SIGTERM) until TAIL after the old leader has exited, at most 10 s after the signal.
    run_until(lambda: time.monotonic() >= tail_end and exit_t is not None and time.monotonic() >= exit_t + TAIL,
              max(tail_end, t_sig + 10.0))
    result["gap_ms"] = round((t_first - t_sig) * 1000, 1)
else:
    result["error"] = "no write acknowledged within %.0f s of the signal" % LIMIT
# Drain what is still in flight (bounded), then summarise what happened after the signal.
end = time.monotonic() + 5.0
while busy and time.monotonic() < end:
    poll(0.05)
after = [e for e in events if e[1] >= t_sig]
errs = {}
for e in after:
    if not e[2]:
        errs[e[3]] = errs.get(e[3], 0) + 1
acked_after = [e for e in after if e[2]]
# Longest stretch without any acknowledged SET, from the signal to the end.
acks = sorted(e[1] for e in acked_after)
stall = max((b - a for a, b in zip([t_sig] + acks, acks)), default=None)
result.update({
    "first_ack_any_ms": round((min(e[1] for e in acked_after) - t_sig) * 1000, 1) if acked_after else None,
    "last_ok_before_signal_ms": round((t_sig - last_ok_before) * 1000, 1),
    "ok_after": len(acked_after),
    "errors_after": errs,
    "max_latency_ms": round(max((e[1] - e[0] for e in after), default=0) * 1000, 1),
    "stall_ms": round(stall * 1000, 1) if stall is not None and got else None,
    "unanswered": len(busy),
    "exit_ms": round((exit_t - t_sig) * 1000, 1) if exit_t is not None else None,
})
json.dump(result, open(out, "w"))
EOF

# jget FILE KEY: one value of a probe result ("" if absent or null).
jget() {
    python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else (", ".join("%s x%d" % (k, n) for k, n in v.items()) if isinstance(v, dict) else v))' "$1" "$2"
}

declare -A fo=()     # "<kind>|<sample>|<what>" -> value
fo_root=$work/failover
if [ "$failovers" -gt 0 ]; then
    log "B. failover: $failovers x kill -9, $failovers x SIGTERM, leader of a 3-node cluster"
    for id in 1 2 3; do start_node "$id" "$fo_root"; done
    wait_leader 30 >/dev/null || die "failover cluster: no leader within 30 s"
fi

# failover KIND(KILL|TERM) SAMPLE
failover() {
    local kind=$1 s=$2 leader follower new t0 t1 t2 commit i res
    leader=$(wait_leader 30) || die "$kind #$s: no leader within 30 s before the signal"
    follower=$(first_follower "$leader")
    res=$work/logs/probe-$kind-$s.json
    timeout 60 python3 "$work/probe.py" "${client_port[$follower]}" "${pid[$leader]}" "$kind" "$res" \
        "$work/logs/node$leader.log" || die "$kind #$s: probe failed"
    # The signalled leader must have exited (kill -9: at once; SIGTERM: after hand-over and shutdown).
    fo["$kind|$s|exit_ms"]=$(jget "$res" exit_ms)
    if [ -z "${fo["$kind|$s|exit_ms"]}" ]; then
        anomaly "$kind #$s: node $leader (pid ${pid[$leader]}) had not exited 10 s after SIG$kind; killing it"
        fo["$kind|$s|exit_ms"]=">10000"
    fi
    kill9 "$leader"
    fo["$kind|$s|old"]=$leader
    fo["$kind|$s|gap"]=$(jget "$res" gap_ms)
    fo["$kind|$s|errors"]=$(jget "$res" errors_after)
    fo["$kind|$s|maxlat"]=$(jget "$res" max_latency_ms)
    fo["$kind|$s|stall"]=$(jget "$res" stall_ms)
    fo["$kind|$s|unanswered"]=$(jget "$res" unanswered)
    local err
    err=$(jget "$res" error)
    if [ -n "$err" ]; then
        anomaly "$kind #$s (leader node $leader, probe via node $follower): $err; $(cat "$res")"
        fo["$kind|$s|gap"]=">20000"
    elif awk -v g="${fo["$kind|$s|gap"]}" -v l="$failover_limit_ms" 'BEGIN {exit !(g > l)}'; then
        anomaly "$kind #$s: failover took ${fo["$kind|$s|gap"]} ms (leader node $leader); $(cat "$res")"
    fi
    [ "${fo["$kind|$s|unanswered"]:-0}" = 0 ] || anomaly "$kind #$s: ${fo["$kind|$s|unanswered"]} SETs still unanswered 5 s after the probe stopped"
    new=$(wait_leader 30) || die "$kind #$s: no new leader within 30 s after the signal"
    fo["$kind|$s|new"]=$new
    # Restart on the same data dir and ports; wait until it is a caught-up follower.
    t1=$(now_ms)
    start_node "$leader" "$fo_root"
    fo["$kind|$s|ready_ms"]=$(( $(now_ms) - t1 ))
    t2=""
    commit=""
    for i in $(seq 600); do
        if [ "$(field "${client_port[$leader]}" cluster_role)" = follower ]; then
            [ -n "$commit" ] || commit=$(field "${client_port[$new]}" cluster_commit_index)
            if [ -n "$commit" ] && [ "$(field "${client_port[$leader]}" cluster_leader_id)" = "$new" ] &&
                [ "$(field "${client_port[$leader]}" cluster_applied_index)" -ge "$commit" ] 2>/dev/null; then
                t2=$(now_ms); break
            fi
        fi
        sleep 0.05
    done
    [ -n "$t2" ] || die "$kind #$s: restarted node $leader is not a caught-up follower after 30 s: $(timeout 2 redis-cli -p "${client_port[$leader]}" cluster info | tr -d '\r' | tr '\n' ' ')"
    fo["$kind|$s|follower_ms"]=$((t2 - t1))
    log "$kind #$s: leader $leader -> $new, first write acknowledged ${fo["$kind|$s|gap"]} ms after SIG$kind; errors: ${fo["$kind|$s|errors"]:-none}; restart to ready ${fo["$kind|$s|ready_ms"]} ms, to caught-up follower $((t2 - t1)) ms; longest stretch without an ack ${fo["$kind|$s|stall"]} ms"
}

# (bash reports "Killed" for each node the probe kill -9s: not an error.)
{
    for kind in KILL TERM; do
        for s in $(seq "$failovers"); do failover "$kind" "$s"; done
    done
} 2> >(grep --line-buffered -v -E 'line [0-9]+: +[0-9]+ Killed ' >&2)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed_s=$(( ($(now_ms) - started) / 1000 ))

# ------------------------------------------------------------------ report
extra=""
for a in ${cluster_args[@]+"${cluster_args[@]}"}; do extra+=" --cluster-arg=$a"; done
{
    echo "# Cluster benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "\`bench/cluster.sh --rounds $rounds --requests $requests --failovers $failovers --no-pipeline-requests $np_requests$extra\`;"
    echo "$(nproc) cores, load average before $load_before, after $load_after; ${elapsed_s} s in all."
    if [ "${#cluster_args[@]}" -gt 0 ]; then
        echo "3 nodes on loopback, \`--fsync always\`, cluster nodes also given \`${cluster_args[*]}\`."
    else
        echo "3 nodes on loopback, \`--fsync always\`, default heartbeat (100 ms) and election timeout (400-800 ms)."
    fi
  if [ "$rounds" -gt 0 ]; then
    echo
    echo "## Throughput, redis-benchmark \`-c $clients\`, medians of $rounds rounds"
    echo
    echo "| test | single rps | leader rps | follower rps | leader ÷ single | follower ÷ single | leader ÷ single per round | follower ÷ single per round |"
    echo "|---|--:|--:|--:|--:|--:|---|---|"
    for t in "${tests[@]}"; do
        s_l=() l_l=() f_l=() rl=() rf=()
        for r in $(seq "$rounds"); do
            s_l+=("${rps["$t|single|$r"]}"); l_l+=("${rps["$t|leader|$r"]}"); f_l+=("${rps["$t|follower|$r"]}")
            rl+=("$(ratio "${rps["$t|leader|$r"]}" "${rps["$t|single|$r"]}")")
            rf+=("$(ratio "${rps["$t|follower|$r"]}" "${rps["$t|single|$r"]}")")
        done
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(test_name "$t")" \
            "$(fmt_int "$(median "${s_l[@]}")")" "$(fmt_int "$(median "${l_l[@]}")")" "$(fmt_int "$(median "${f_l[@]}")")" \
            "$(median2 "${rl[@]}")" "$(median2 "${rf[@]}")" "${rl[*]}" "${rf[*]}"
    done
    echo
    echo "### CPU per request"
    echo
    echo "Processor time (user + system, from /proc) the server processes spent per request, medians over the rounds."
    echo "On this machine the three nodes share 2 cores, so cluster throughput is bounded by the cluster's *total* CPU per write;"
    echo "on dedicated machines each node has its own cores and the leader's own CPU per write is the bound."
    echo "The last column is that bound as a ratio (single ÷ leader node CPU per request): a projection for CPU-bound runs, not a measurement."
    echo
    echo "| test | single node µs | leader node µs | cluster total µs (leader test) | follower node µs | cluster total µs (follower test) | single ÷ leader node |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    for t in "${tests[@]}"; do
        cs=() cl=() cal=() cf=() caf=()
        for r in $(seq "$rounds"); do
            cs+=("${cpu["$t|single|$r"]}"); cl+=("${cpu["$t|leader|$r"]}"); cal+=("${cpu_all["$t|leader|$r"]}")
            cf+=("${cpu["$t|follower|$r"]}"); caf+=("${cpu_all["$t|follower|$r"]}")
        done
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(test_name "$t")" \
            "$(median "${cs[@]}")" "$(median "${cl[@]}")" "$(median "${cal[@]}")" \
            "$(median "${cf[@]}")" "$(median "${caf[@]}")" \
            "$(ratio "$(median "${cs[@]}")" "$(median "${cl[@]}")")"
    done
    echo
    echo "Raw requests/s per round (single / leader / follower):"
    echo
    for t in "${tests[@]}"; do
        line="- $(test_name "$t"):"
        for r in $(seq "$rounds"); do
            line+=" r$r $(fmt_int "${rps["$t|single|$r"]}") / $(fmt_int "${rps["$t|leader|$r"]}") / $(fmt_int "${rps["$t|follower|$r"]}");"
        done
        echo "${line%;}"
    done
  fi
  if [ "$failovers" -gt 0 ]; then
    echo
    echo "## Failover: signal to the leader → first SET (sent after the signal) acknowledged"
    echo
    echo "Probe: a SET every 5 ms through a follower, open loop (up to 64 connections)."
    echo
    echo "| signal | samples (ms) | median ms | max ms | longest stretch without an ack, median / max ms | restart → ready, median ms | restart → caught-up follower, median ms |"
    echo "|---|---|--:|--:|--:|--:|--:|"
    for kind in KILL TERM; do
        g=() rd=() fl=() st=()
        for s in $(seq "$failovers"); do
            g+=("${fo["$kind|$s|gap"]}"); rd+=("${fo["$kind|$s|ready_ms"]}"); fl+=("${fo["$kind|$s|follower_ms"]}")
            st+=("${fo["$kind|$s|stall"]}")
        done
        label='`kill -9`'; [ "$kind" = TERM ] && label='SIGTERM (hand-over)'
        printf '| %s | %s | %s | %s | %s / %s | %s | %s |\n' "$label" "$(echo "${g[*]}" | sed 's/ /, /g')" \
            "$(median "${g[@]}")" "$(maximum "${g[@]}")" "$(median "${st[@]}")" "$(maximum "${st[@]}")" \
            "$(median "${rd[@]}")" "$(median "${fl[@]}")"
    done
    echo
    echo "\"Longest stretch without an ack\": the longest time, from the signal until the probe stopped"
    echo "(at least 0.3 s after the first ack and after the old leader exited), between two acknowledged"
    echo "SETs (or between the signal and the first one): the write outage a client sees. After SIGTERM"
    echo "the old leader goes on serving while it hands over, so the first ack can come before the stall."
    echo
    echo "Per sample:"
    echo
    echo "| signal | # | old → new leader | first ack ms | longest stretch without an ack, ms | slowest SET, ms | old leader exited after, ms | errors the probe saw after the signal |"
    echo "|---|--:|---|--:|--:|--:|--:|---|"
    for kind in KILL TERM; do
        for s in $(seq "$failovers"); do
            printf '| %s | %d | %s → %s | %s | %s | %s | %s | %s |\n' "$kind" "$s" "${fo["$kind|$s|old"]}" "${fo["$kind|$s|new"]}" \
                "${fo["$kind|$s|gap"]}" "${fo["$kind|$s|stall"]}" "${fo["$kind|$s|maxlat"]}" "${fo["$kind|$s|exit_ms"]}" "${fo["$kind|$s|errors"]:-none}"
        done
    done
  fi
    echo
    if [ "${#anomalies[@]}" -gt 0 ]; then
        echo "## Anomalies (server logs: $logs_dest/)"
        echo
        for a in "${anomalies[@]}"; do echo "- $a"; done
    else
        echo "No anomalies (no benchmark errors or timeouts, every failover under $failover_limit_ms ms)."
    fi
} >"$report"
cat "$report"
log "report written to $report"
