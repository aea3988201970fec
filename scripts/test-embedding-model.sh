#!/usr/bin/env bash
# Runs strata-embed's model tests against the real all-MiniLM-L6-v2 (they
# are behind the `model-tests` feature, and fail, never skip, without the
# model): fetches the model (scripts/fetch-embedding-model.sh, idempotent),
# then `cargo test -p strata-embed --features model-tests`, and the server's
# semantic search test (`cargo test -p strata --features model-tests --test
# search_semantic`).
#
# Usage: scripts/test-embedding-model.sh [extra cargo test arguments]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
model_dir=$repo/target/models/all-MiniLM-L6-v2
bash "$repo/scripts/fetch-embedding-model.sh" "$model_dir"
cd "$repo"
STRATA_EMBED_MODEL_DIR=$model_dir cargo test -p strata-embed --features model-tests "$@"
STRATA_EMBED_MODEL_DIR=$model_dir cargo test -p strata --features model-tests \
  --test search_semantic "$@"
