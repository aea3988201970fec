#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, at the
# lowest CPU priority, and prints each run's final statistics.
#
#   fuzz/run-all.sh [seconds per target, default 600] [target...]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz if it is missing. New inputs go to fuzz/corpus/<target>/ (not
# committed), crashes to fuzz/artifacts/<target>/, full logs to
# fuzz/logs/<target>.log. Exits non-zero if any target crashed.
set -euo pipefail

seconds=${1:-600}
shift || true
cd "$(dirname "$0")/.."

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p fuzz/logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "== $target (${seconds} s)"
    # -timeout: a decoder that spends 30 s on one input (at most 4 KiB by
    # default) is a finding, not a slow machine.
    if ! nice -n 19 cargo +nightly fuzz run "$target" \
        "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        >"fuzz/logs/$target.log" 2>&1; then
        failed+=("$target")
    fi
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|panicked|SUMMARY|Test unit written' \
        "fuzz/logs/$target.log" || true
    echo "corpus: $(find "fuzz/corpus/$target" -type f | wc -l) files, $(du -sk "fuzz/corpus/$target" | cut -f1) KiB"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
