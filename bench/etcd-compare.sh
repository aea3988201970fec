#!/usr/bin/env bash
# Strata cluster vs etcd cluster, 3 nodes each (or one node each with
# --nodes 1), on this one machine, driven by ONE load generator
# (strata-bench: RESP for Strata, or with --strata-target http Strata's
# HTTP/JSON API; `--target etcd`, the v3 HTTP/JSON gateway over HTTP/1.1
# keep-alive, for etcd), so both get the same closed loop, key stream (same
# seed), value size and HDR percentiles.
#
#   Strata: `--fsync always` (a write is acknowledged once fsynced on a
#   majority). etcd (Debian's etcd-server 3.4): default durability, i.e. the
#   WAL is fsynced before a write is acknowledged. Default heartbeats and
#   election timeouts for both.
#
#   Workloads, each against the leader and against a follower:
#     write: SET / put, 100% writes, uniform keys;
#     read:  linearizable GET / range (ReadIndex in both), after a preload
#            of the keyspace (a separate, unmeasured strata-bench --load).
#   A fresh cluster of each system per round; R rounds, alternating which
#   system goes first and whether the leader or the follower goes first.
#   The same --seed for both systems within a round. No pipelining (etcd's
#   HTTP/1.1 gateway cannot), -c connections each with one request in flight.
#
#   bench/etcd-compare.sh [--rounds R] [--duration-s D] [--warmup-s W]
#                         [--connections C] [--value-size B] [--keyspace K]
#                         [--bench-threads T] [--no-followers] [--keep-logs]
#                         [--no-build] [--nodes 1|3] [--strata-target resp|http]
#   defaults: R=2, D=20, W=2, C=50, B=100, K=10000, T=1 (one client thread,
#   as redis-benchmark, leaves the other core to the servers). About 6.5
#   minutes on 2 cores plus the build (3.5 minutes with --no-followers).
#
# Results: a markdown table on stdout and in bench/results/etcd-compare-<ts>.md,
# the raw strata-bench JSON lines in bench/results/etcd-compare-<ts>.jsonl.
# Server logs are copied to bench/results/etcd-compare-<ts>-logs/ on failure,
# on an anomaly (a run that failed, timed out or saw errors) or with
# --keep-logs. Every wait is bounded; on exit every server this script
# started is killed (-9, by PID), a running strata-bench too (through its
# wrapper, by PID), and the temp dir is removed.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=2
duration_s=20
warmup_s=2
connections=50
value_size=100
keyspace=10000
bench_threads=1
followers=1
keep_logs=0
no_build=0
nodes=3
strata_target=resp
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --duration-s) duration_s=$2; shift 2 ;;
        --warmup-s) warmup_s=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --value-size) value_size=$2; shift 2 ;;
        --keyspace) keyspace=$2; shift 2 ;;
        --bench-threads) bench_threads=$2; shift 2 ;;
        --no-followers) followers=0; shift ;;
        --keep-logs) keep_logs=1; shift ;;
        --no-build) no_build=1; shift ;;
        --nodes) nodes=$2; shift 2 ;;
        --strata-target) strata_target=$2; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$duration_s" "$warmup_s" "$connections" "$value_size" "$keyspace" "$bench_threads"; do
    case "$v" in ''|*[!0-9]*) echo "numeric options take whole numbers, got '$v'" >&2; exit 2 ;; esac
done
[ "$rounds" -ge 1 ] && [ "$duration_s" -ge 1 ] || { echo "--rounds and --duration-s must be at least 1" >&2; exit 2; }
case "$nodes" in 1|3) ;; *) echo "--nodes is 1 or 3, got '$nodes'" >&2; exit 2 ;; esac
case "$strata_target" in resp|http) ;; *) echo "--strata-target is resp or http, got '$strata_target'" >&2; exit 2 ;; esac
[ "$nodes" -eq 3 ] || followers=0
node_ids=$(seq "$nodes")
bench_timeout=$((warmup_s + duration_s + 120))   # one strata-bench run, load included

missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} with apt" >&2
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

[ "$no_build" -eq 1 ] || cargo build --release -p strata-bench -p strata >&2
strata=$PWD/target/release/strata
bench_bin=$PWD/target/release/strata-bench
# Settings must come from the flags below only.
for v in $(env | sed -n 's/^\(STRATA_[A-Z_]*\|ETCD[A-Z_]*\)=.*/\1/p'); do unset "$v"; done
# The HTTP listener on an ephemeral port: nodes on one host must not all
# ask for its default (7382); an older build ignores the variable.
export STRATA_HTTP_LISTEN=127.0.0.1:0

mkdir -p bench/results
stamp=$(date -u +%Y%m%d-%H%M%S)
report=bench/results/etcd-compare-$stamp.md
raw=bench/results/etcd-compare-$stamp.jsonl
logs_dest=bench/results/etcd-compare-$stamp-logs
work=$(mktemp -d /tmp/strata-etcd-compare.XXXXXX)
mkdir -p "$work/logs" "$work/runs"

# Only processes still running (and not yet reaped) are listed, so the trap
# never signals a PID the system may have reused.
declare -A pid=()    # "strata|1".."etcd|3" -> running server pid
bench_pid=""         # the running load-generator wrapper (cpu.py), if any
anomalies=()

cleanup() {
    local rc=$?
    trap - EXIT
    local p
    # cpu.py kills its strata-bench when it gets SIGTERM.
    if [ -n "$bench_pid" ]; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
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

# Fifteen distinct free loopback ports, all held at once while choosing.
read -r s_c1 s_c2 s_c3 s_p1 s_p2 s_p3 e_c1 e_c2 e_c3 e_p1 e_p2 e_p3 s_h1 s_h2 s_h3 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(15)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
declare -A client_port=([strata|1]=$s_c1 [strata|2]=$s_c2 [strata|3]=$s_c3
    [etcd|1]=$e_c1 [etcd|2]=$e_c2 [etcd|3]=$e_c3)
declare -A peer_port=([strata|1]=$s_p1 [strata|2]=$s_p2 [strata|3]=$s_p3
    [etcd|1]=$e_p1 [etcd|2]=$e_p2 [etcd|3]=$e_p3)
declare -A http_port=([1]=$s_h1 [2]=$s_h2 [3]=$s_h3)
strata_initial="1=127.0.0.1:$s_p1,2=127.0.0.1:$s_p2,3=127.0.0.1:$s_p3"
etcd_initial="e1=http://127.0.0.1:$e_p1,e2=http://127.0.0.1:$e_p2,e3=http://127.0.0.1:$e_p3"
[ "$nodes" -eq 3 ] || etcd_initial="e1=http://127.0.0.1:$e_p1"

# ------------------------------------------------------------------ strata
# strata_field PORT NAME: one value of CLUSTER INFO (empty if no answer).
strata_field() {
    timeout 2 "$strata" --addr "127.0.0.1:$1" cluster info 2>/dev/null | tr -d '\r' |
        awk -F: -v f="$2" '$1 == f {print $2}' || true
}

start_strata() {
    local root=$1 id out extra
    for id in $node_ids; do
        out=$work/logs/strata$id.$root.out
        extra=(--http-listen off)
        [ "$strata_target" = http ] && extra=(--http-listen "127.0.0.1:${http_port[$id]}")
        [ "$nodes" -eq 3 ] && extra+=(--node-id "$id" --peer-listen "127.0.0.1:${peer_port[strata|$id]}"
            --initial-cluster "$strata_initial")
        "$strata" server --listen "127.0.0.1:${client_port[strata|$id]}" --text-listen off \
            --data-dir "$work/$root/n$id" --fsync always "${extra[@]}" \
            >"$out" 2>>"$work/logs/strata$id.log" &
        pid[strata|$id]=$!
    done
    for id in $node_ids; do
        local i ok=0
        for i in $(seq 300); do
            grep -q '^ready ' "$work/logs/strata$id.$root.out" 2>/dev/null && { ok=1; break; }
            kill -0 "${pid[strata|$id]}" 2>/dev/null || break
            sleep 0.1
        done
        [ "$ok" -eq 1 ] || die "strata node $id did not start: $(tail -3 "$work/logs/strata$id.log")"
    done
}

# strata_leader: prints the leader id once every node names the same one (30 s).
strata_leader() {
    local deadline=$(( $(now_ms) + 30000 )) id leader ok
    [ "$nodes" -eq 1 ] && { echo 1; return 0; }
    while [ "$(now_ms)" -lt "$deadline" ]; do
        leader=""
        for id in 1 2 3; do
            [ "$(strata_field "${client_port[strata|$id]}" cluster_role)" = leader ] && leader=$id
        done
        if [ -n "$leader" ]; then
            ok=1
            for id in 1 2 3; do
                [ "$(strata_field "${client_port[strata|$id]}" cluster_leader_id)" = "$leader" ] || ok=0
            done
            [ "$ok" -eq 1 ] && { echo "$leader"; return 0; }
        fi
        sleep 0.1
    done
    return 1
}

# -------------------------------------------------------------------- etcd
start_etcd() {
    local root=$1 id
    for id in $node_ids; do
        etcd --name "e$id" --data-dir "$work/$root/e$id" \
            --listen-client-urls "http://127.0.0.1:${client_port[etcd|$id]}" \
            --advertise-client-urls "http://127.0.0.1:${client_port[etcd|$id]}" \
            --listen-peer-urls "http://127.0.0.1:${peer_port[etcd|$id]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${peer_port[etcd|$id]}" \
            --initial-cluster "$etcd_initial" --initial-cluster-state new \
            --initial-cluster-token "etcd-compare-$root" \
            --logger zap --log-outputs stderr --log-level warn \
            >/dev/null 2>>"$work/logs/etcd$id.log" &
        pid[etcd|$id]=$!
    done
}

# etcd_status PORT: `member_id leader` of that member (empty if no answer).
etcd_status() {
    curl -sS -m 2 -X POST -d '{}' "http://127.0.0.1:$1/v3/maintenance/status" 2>/dev/null |
        jq -r 'select(.header.member_id != null and .leader != null) | "\(.header.member_id) \(.leader)"' 2>/dev/null || true
}

# etcd_leader: prints the leader's index (1-3) once every member names the
# same leader and it is one of them (30 s).
etcd_leader() {
    local deadline=$(( $(now_ms) + 30000 )) id member lead leaders found
    while [ "$(now_ms)" -lt "$deadline" ]; do
        leaders=() found=""
        for id in $node_ids; do
            kill -0 "${pid[etcd|$id]}" 2>/dev/null || die "etcd member $id exited: $(tail -3 "$work/logs/etcd$id.log")"
            read -r member lead < <(etcd_status "${client_port[etcd|$id]}"; echo) || true
            [ -n "${lead:-}" ] && [ "$lead" != 0 ] || continue
            leaders+=("$lead")
            [ "$member" = "$lead" ] && found=$id
        done
        if [ "${#leaders[@]}" -eq "$nodes" ] && [ -n "$found" ] &&
            [ "$(printf '%s\n' "${leaders[@]}" | sort -u | wc -l)" -eq 1 ]; then
            echo "$found"; return 0
        fi
        sleep 0.1
    done
    return 1
}

stop_all() {
    local sys=$1 id
    for id in $node_ids; do
        kill -9 "${pid[$sys|$id]}" 2>/dev/null || true
        wait "${pid[$sys|$id]}" 2>/dev/null || true
        unset "pid[$sys|$id]"
    done
}

# cpu_ticks SYSTEM: CPU time (user + system, clock ticks) of its 3 servers.
cpu_ticks() {
    local sys=$1 id total=0 t
    for id in $node_ids; do
        t=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/${pid[$sys|$id]}/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
clk_tck=$(getconf CLK_TCK)

cat >"$work/cpu.py" <<'EOF'
# cpu.py OUT TIMEOUT_S CMD...: runs CMD, kills it (SIGKILL) after TIMEOUT_S
# seconds (exit 124) or when this wrapper gets SIGTERM/SIGINT (exit 143),
# writes the CPU seconds (user + system) CMD used to OUT, exits with its
# status.
import resource, signal, subprocess, sys
out, limit, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
child = subprocess.Popen(cmd)
def stop(signum, frame):
    child.kill(); child.wait(); sys.exit(143)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
try:
    rc = child.wait(timeout=limit)
except subprocess.TimeoutExpired:
    child.kill(); child.wait(); rc = 124
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(out, "w").write("%.3f\n" % (r.ru_utime + r.ru_stime))
sys.exit(rc)
EOF

# bench CPU_FILE ARGS...: strata-bench ARGS in the background (so a signal
# to this script is handled at once), bounded by $bench_timeout; returns
# its exit status. Its stdout goes to this function's stdout.
bench() {
    local cpu_file=$1 rc=0
    shift
    python3 "$work/cpu.py" "$cpu_file" "$bench_timeout" "$bench_bin" "$@" \
        2>>"$work/logs/bench-stderr.log" &
    bench_pid=$!
    wait "$bench_pid" || rc=$?
    bench_pid=""
    return "$rc"
}

# ---------------------------------------------------------------- runs
run_no=0
# bench_run SYSTEM NODE_KIND NODE_ID WORKLOAD ROUND SEED
bench_run() {
    local sys=$1 kind=$2 id=$3 wl=$4 r=$5 seed=$6 target=resp mode addr name rc t0 t1
    addr=127.0.0.1:${client_port[$sys|$id]}
    [ "$sys" = etcd ] && target=etcd
    [ "$sys" = strata ] && [ "$strata_target" = http ] && { target=http; addr=127.0.0.1:${http_port[$id]}; }
    run_no=$((run_no + 1))
    name=$(printf '%02d-r%d-%s-%s-%s' "$run_no" "$r" "$sys" "$kind" "$wl")
    local common=(--target "$target" --addr "$addr" --connections "$connections"
        --keyspace "$keyspace" --value-size "$value_size" --threads "$bench_threads")
    if [ "$wl" = read ]; then
        # Preload (not measured): every key written once, then one request.
        rc=0
        bench "$work/runs/$name.load-cpu" "${common[@]}" --workload set --load --requests 1 \
            --warmup-s 0 --seed "$seed" --format json >"$work/runs/$name.load.json" || rc=$?
        [ "$rc" -eq 0 ] || anomaly "$name: preload exited $rc: $(tail -2 "$work/logs/bench-stderr.log" | tr '\n' ' ')"
        mode=get
    else
        mode=set
    fi
    t0=$(cpu_ticks "$sys")
    rc=0
    echo "=== $name" >>"$work/logs/bench-stderr.log"
    bench "$work/runs/$name.client-cpu" "${common[@]}" --workload "$mode" \
        --duration-s "$duration_s" --warmup-s "$warmup_s" --seed "$seed" --format json \
        --label "$sys-$kind-$wl-r$r" >"$work/runs/$name.json" || rc=$?
    t1=$(cpu_ticks "$sys")
    awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" 'BEGIN {printf "%.3f\n", (b - a) / hz}' >"$work/runs/$name.server-cpu"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$sys" "$kind" "$wl" "$r" "$rc" "$id" >>"$work/runs/index.tsv"
    local summary
    summary=$(jq -r '"\(.ops_per_s) ops/s, p50 \(.latency_us.p50) us, p99 \(.latency_us.p99) us, errors \(.errors), failed connections \(.failed_connections)"' \
        "$work/runs/$name.json" 2>/dev/null || echo "no report")
    log "round $r: $sys $kind (node $id) $wl: $summary"
    if [ "$rc" -ne 0 ]; then
        anomaly "$name: strata-bench exited $rc (124: timeout); $summary"
    elif [ "$(jq -r '.errors + .failed_connections' "$work/runs/$name.json" 2>/dev/null || echo 1)" != 0 ]; then
        anomaly "$name: $summary"
    fi
}

# round_system SYSTEM ROUND SEED
round_system() {
    local sys=$1 r=$2 seed=$3 root=r$2-$1 leader follower id kinds wl k
    if [ "$sys" = strata ]; then
        start_strata "$root"
        leader=$(strata_leader) || die "round $r: no Strata leader within 30 s"
    else
        start_etcd "$root"
        leader=$(etcd_leader) || die "round $r: no etcd leader within 30 s"
    fi
    follower=none
    for id in $node_ids; do [ "$id" != "$leader" ] && { follower=$id; break; }; done
    log "round $r: $sys leader is node $leader, follower node $follower"
    kinds=(leader)
    if [ "$followers" -eq 1 ]; then
        if [ $((r % 2)) -eq 1 ]; then kinds=(leader follower); else kinds=(follower leader); fi
    fi
    for wl in write read; do
        for k in "${kinds[@]}"; do
            if [ "$k" = leader ]; then id=$leader; else id=$follower; fi
            bench_run "$sys" "$k" "$id" "$wl" "$r" "$seed"
        done
    done
    stop_all "$sys"
    du -sh "$work/$root" 2>/dev/null | awk -v s="$sys" -v r="$r" '{print "round " r ": " s " data dirs: " $1}' >&2 || true
    rm -rf "${work:?}/$root"
}

started=$(now_ms)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $work; $rounds rounds, -c $connections, ${value_size}-byte values, $keyspace keys, ${warmup_s}+${duration_s} s per run"
for r in $(seq "$rounds"); do
    seed=$((1000 + r))
    if [ $((r % 2)) -eq 1 ]; then
        round_system strata "$r" "$seed"; round_system etcd "$r" "$seed"
    else
        round_system etcd "$r" "$seed"; round_system strata "$r" "$seed"
    fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed_s=$(( ($(now_ms) - started) / 1000 ))

# ------------------------------------------------------------------ report
for f in "$work"/runs/*.json; do
    case "$f" in *.load.json) continue ;; esac
    cat "$f"
done >"$raw"
etcd_version=$(etcd --version 2>/dev/null | awk '/^etcd Version/ {print $3}')
anomaly_file=$work/anomalies.txt
printf '%s\n' ${anomalies[@]+"${anomalies[@]}"} >"$anomaly_file"
extra_flags=" --nodes $nodes --strata-target $strata_target"
[ "$followers" -eq 1 ] || [ "$nodes" -eq 1 ] || extra_flags+=" --no-followers"
REPORT_COMMAND="bench/etcd-compare.sh --rounds $rounds --duration-s $duration_s --warmup-s $warmup_s --connections $connections --value-size $value_size --keyspace $keyspace --bench-threads $bench_threads$extra_flags" \
REPORT_WHEN="$(date -u '+%Y-%m-%d %H:%M UTC')" \
REPORT_MACHINE="$(nproc) cores, load average before $load_before, after $load_after; ${elapsed_s} s in all." \
REPORT_ETCD_VERSION="$etcd_version" REPORT_LOGS="$logs_dest" \
REPORT_NODES="$nodes" REPORT_STRATA_TARGET="$strata_target" \
REPORT_ROUNDS="$rounds" REPORT_WARMUP="$warmup_s" REPORT_CONNECTIONS="$connections" \
REPORT_VALUE_SIZE="$value_size" REPORT_KEYSPACE="$keyspace" REPORT_THREADS="$bench_threads" \
    python3 - "$work/runs" "$anomaly_file" >"$report" <<'EOF'
import json, os, statistics, sys
runs_dir, anomaly_file = sys.argv[1], sys.argv[2]
env = os.environ
rounds, warmup = int(env["REPORT_ROUNDS"]), float(env["REPORT_WARMUP"])
rows = {}
for line in open(os.path.join(runs_dir, "index.tsv")):
    name, sysname, kind, wl, r, rc, node = line.rstrip("\n").split("\t")
    try:
        rep = json.load(open(os.path.join(runs_dir, name + ".json")))
    except Exception:
        rep = None
    def num(suffix):
        try:
            return float(open(os.path.join(runs_dir, name + suffix)).read())
        except Exception:
            return None
    rows.setdefault((wl, kind, sysname), []).append(
        dict(round=int(r), rc=int(rc), rep=rep, server_cpu=num(".server-cpu"), client_cpu=num(".client-cpu")))

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def f_int(x):
    return "NA" if x is None else f"{x:,.0f}"
def f_ms(us):
    return "NA" if us is None else f"{us / 1000:.2f}"
def f_ratio(a, b):
    return "NA" if a is None or not b else f"{a / b:.2f}"
def ok(run):
    return run["rep"] is not None and run["rc"] == 0
def stat(runs, key):
    return med([run["rep"]["ops_per_s"] if key == "ops" else run["rep"]["latency_us"][key]
                for run in runs if ok(run)])
def cores(runs, which):
    # CPU seconds over warm-up + measured time.
    return med([run[which] / (warmup + run["rep"]["duration_s"]) for run in runs
                if ok(run) and run[which] is not None and run["rep"]["duration_s"] > 0])
def pairs():
    for wl in ("write", "read"):
        for kind in ("leader", "follower"):
            s, e = rows.get((wl, kind, "strata")), rows.get((wl, kind, "etcd"))
            if s and e:
                yield wl, kind, s, e

wl_name = {"write": "write: SET / put", "read": "read: GET / linearizable range"}
nodes_text = "3 nodes each" if env["REPORT_NODES"] == "3" else "one node each"
via = "its HTTP/JSON API" if env["REPORT_STRATA_TARGET"] == "http" else "RESP"
print(f"# Strata vs etcd, {nodes_text}, Strata through {via}, {env['REPORT_WHEN']}")
print()
print(f"`{env['REPORT_COMMAND']}`;")
print(env["REPORT_MACHINE"])
print(f"Strata `--fsync always`; etcd {env['REPORT_ETCD_VERSION']} with its defaults (WAL fsynced before a write "
      "is acknowledged); both on loopback with default heartbeat and election timeouts. "
      f"strata-bench: {env['REPORT_CONNECTIONS']} connections, one request in flight each, "
      f"{env['REPORT_VALUE_SIZE']}-byte values, {env['REPORT_KEYSPACE']} uniform keys, the same seed for both "
      f"systems in a round, {env['REPORT_THREADS']} client thread(s); etcd through its HTTP/JSON gateway.")
print()
print(f"Medians of {rounds} round(s); latencies in ms; ratio = Strata ÷ etcd (throughput: above 1 Strata is "
      "faster; latency: below 1 Strata is faster).")
print()
print("| workload | node | Strata ops/s | etcd ops/s | ops/s ratio | Strata p50 / p99 / p99.9 | etcd p50 / p99 / p99.9 | p50 ratio | p99 ratio | ops/s ratio per round |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
for wl, kind, s, e in pairs():
    per_round = []
    for run in sorted(s, key=lambda x: x["round"]):
        other = [x for x in e if x["round"] == run["round"]]
        per_round.append(f_ratio(run["rep"]["ops_per_s"] if ok(run) else None,
                                 other[0]["rep"]["ops_per_s"] if other and ok(other[0]) else None))
    lat = lambda runs: " / ".join(f_ms(stat(runs, q)) for q in ("p50", "p99", "p999"))
    print(f"| {wl_name[wl]} | {kind} | {f_int(stat(s, 'ops'))} | {f_int(stat(e, 'ops'))} | "
          f"{f_ratio(stat(s, 'ops'), stat(e, 'ops'))} | {lat(s)} | {lat(e)} | "
          f"{f_ratio(stat(s, 'p50'), stat(e, 'p50'))} | {f_ratio(stat(s, 'p99'), stat(e, 'p99'))} | {' '.join(per_round)} |")
print()
print("CPU used during the runs (warm-up + measured), medians, in cores (the machine has "
      f"{os.cpu_count()}): the servers together, and the load generator.")
print()
print("| workload | node | Strata servers | etcd servers | client, Strata | client, etcd | server CPU µs per op, Strata / etcd |")
print("|---|---|--:|--:|--:|--:|--:|")
def fc(x):
    return "NA" if x is None else f"{x:.2f}"
def per_op(runs):
    c, o = cores(runs, "server_cpu"), stat(runs, "ops")
    return "NA" if c is None or not o else f"{c / o * 1e6:.0f}"
for wl, kind, s, e in pairs():
    print(f"| {wl} | {kind} | {fc(cores(s, 'server_cpu'))} | {fc(cores(e, 'server_cpu'))} | "
          f"{fc(cores(s, 'client_cpu'))} | {fc(cores(e, 'client_cpu'))} | {per_op(s)} / {per_op(e)} |")
print()
print("Every run (ops/s, p50 / p99 / p99.9 ms, errors):")
print()
order = {"write": 0, "read": 1, "leader": 0, "follower": 1, "strata": 0, "etcd": 1}
for (wl, kind, sysname), runs in sorted(rows.items(), key=lambda kv: [order[x] for x in kv[0]]):
    parts = []
    for run in sorted(runs, key=lambda x: x["round"]):
        if ok(run):
            rp = run["rep"]; l = rp["latency_us"]
            parts.append(f"r{run['round']} {rp['ops_per_s']:,.0f}, {f_ms(l['p50'])} / {f_ms(l['p99'])} / "
                         f"{f_ms(l['p999'])}, {rp['errors']}")
        else:
            parts.append(f"r{run['round']} failed (exit {run['rc']})")
    print(f"- {wl} {kind} {sysname}: " + "; ".join(parts))
print()
anomalies = [l for l in open(anomaly_file).read().splitlines() if l.strip()]
if anomalies:
    print(f"## Anomalies (logs: {env['REPORT_LOGS']}/)")
    print()
    for a in anomalies:
        print("- " + a)
else:
    print("No anomalies (every run finished with no error and no failed connection).")
EOF
cat "$report"
log "report written to $report (raw JSON lines: $raw)"
