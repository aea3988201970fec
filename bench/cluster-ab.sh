#!/usr/bin/env bash
# A/B for the cluster benchmark: two strata builds, each run through
# bench/cluster.sh (a single node, then the leader and a follower of a fresh
# 3-node cluster, --fsync always; then failovers), alternating A, B, A, B...
# so that both see the same machine. Prints, per test, each build's median
# requests/s and B÷A for the single node, the leader and the follower, and
# the failover medians.
#
#   bench/cluster-ab.sh A_BINARY B_BINARY [pairs] [requests] [failovers]
#   (defaults 3 pairs, 100000 requests per test, 2 failovers of each kind
#   per run; about 3-4 minutes per run on 2 cores)
#
# For example, the build before a change against the one after it:
#   git worktree add /tmp/strata-before <commit>
#   (cd /tmp/strata-before && cargo build --release -p strata)
#   cargo build --release -p strata
#   bench/cluster-ab.sh /tmp/strata-before/target/release/strata target/release/strata
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: bench/cluster-ab.sh A_BINARY B_BINARY [pairs] [requests] [failovers]"
a_bin=$(realpath -- "${1:?$usage}")
b_bin=$(realpath -- "${2:?$usage}")
pairs=${3:-3}
requests=${4:-100000}
failovers=${5:-2}

mkdir -p bench/results
out=bench/results/cluster-ab-$(date -u +%Y%m%d-%H%M%S).md
work=$(mktemp -d /tmp/strata-cluster-ab.XXXXXX)
trap 'rm -rf "$work"' EXIT

# One run: its markdown report, kept as $work/<label><pair>.md.
run() {
    local label=$1 bin=$2 pair=$3
    echo "[$(date -u +%H:%M:%S)] $label (pair $pair): $bin" >&2
    bench/cluster.sh --binary "$bin" --rounds 1 --requests "$requests" \
        --failovers "$failovers" >"$work/$label$pair.md"
}

for p in $(seq "$pairs"); do
    # Alternate which build goes first, so neither always runs on a warmer
    # (or more fragmented) machine.
    if [ $((p % 2)) -eq 1 ]; then run A "$a_bin" "$p"; run B "$b_bin" "$p"
    else run B "$b_bin" "$p"; run A "$a_bin" "$p"; fi
done

# Table rows of cluster.sh's throughput table: | test | single | leader | follower | ...
# and of its failover table: | signal | samples | median ms | ...
python3 - "$work" "$pairs" "$a_bin" "$b_bin" >"$out" <<'EOF'
import re, statistics, sys
work, pairs, a_bin, b_bin = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
num = lambda s: float(s.replace(",", "")) if re.fullmatch(r"[0-9.,]+", s.strip()) else None
rps, fo = {}, {}
for label in "AB":
    for p in range(1, pairs + 1):
        section = None
        for line in open(f"{work}/{label}{p}.md"):
            if line.startswith("## Throughput"): section = "rps"
            elif line.startswith("### CPU"): section = None
            elif line.startswith("## Failover"): section = "fo"
            elif line.startswith("Per sample"): section = None
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not line.startswith("|") or len(cells) < 4 or cells[0] in ("test", "signal") or cells[0].startswith("-"):
                continue
            if section == "rps":
                for i, role in enumerate(("single", "leader", "follower")):
                    rps.setdefault((cells[0], role, label), []).append(num(cells[1 + i]))
            elif section == "fo":
                fo.setdefault((cells[0], label), []).append(num(cells[2]))
med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None
print(f"# Cluster A/B: A = {a_bin}, B = {b_bin}\n")
print(f"{pairs} pairs of bench/cluster.sh runs, alternating; medians over the pairs.\n")
print("| test | role | A rps | B rps | B ÷ A | B ÷ A per pair |")
print("|---|---|--:|--:|--:|---|")
ratios = []
for (test, role, label) in sorted({(t, r, "A") for (t, r, _) in rps}, key=lambda k: (k[0], ["single", "leader", "follower"].index(k[1]))):
    a, b = rps[(test, role, "A")], rps[(test, role, "B")]
    per = [f"{y / x:.2f}" if x and y else "NA" for x, y in zip(a, b)]
    ma, mb = med(a), med(b)
    r = mb / ma if ma and mb else None
    if r: ratios.append(r)
    print(f"| {test} | {role} | {ma:,.0f} | {mb:,.0f} | {r:.2f} | {' '.join(per)} |" if r else f"| {test} | {role} | NA | NA | NA | |")
if ratios:
    print(f"\nGeometric mean of B ÷ A over the {len(ratios)} cells: {statistics.geometric_mean(ratios):.2f}\n")
print("| failover signal | A median ms | B median ms |")
print("|---|--:|--:|")
for sig in sorted({s for (s, _) in fo}):
    a, b = med(fo[(sig, "A")]), med(fo[(sig, "B")])
    print(f"| {sig} | {a} | {b} |")
EOF
cat "$out"
echo "(written to $out)" >&2
