#!/usr/bin/env bash
# Lints every deployment file, offline once the linters are installed:
#   - Kubernetes manifests: kubernetes-validate --strict (unknown fields are
#     errors) against the oldest and the newest Kubernetes we support, and
#     yamllint; the kustomization lists every manifest;
#   - the Dockerfile: hadolint; the container scripts: shellcheck;
#   - the systemd unit: systemd-analyze verify, where systemd is installed.
# The linters go into a venv inside the clone (target/deploy-venv, ignored by
# git), installed from PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The oldest Kubernetes the manifests are written for (the StatefulSet's
# persistentVolumeClaimRetentionPolicy is on by default from 1.27), and the
# newest the validator knows.
k8s_oldest=1.27.0
k8s_newest=1.37.0

venv=target/deploy-venv
if ! "$venv/bin/python" -m pip --disable-pip-version-check -q check >/dev/null 2>&1 \
  || ! cmp -s deploy/requirements.txt "$venv/requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -r deploy/requirements.txt
  cp deploy/requirements.txt "$venv/requirements.txt"
fi
bin=$venv/bin
failed=0
check() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAILED: $what"
    failed=$((failed + 1))
  fi
}

manifests=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
check "yamllint" "$bin/yamllint" --strict -c deploy/.yamllint.yaml deploy/kubernetes deploy/.yamllint.yaml
for version in "$k8s_oldest" "$k8s_newest"; do
  check "kubernetes-validate --strict, Kubernetes $version" \
    "$bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"
done
# Every manifest is in the kustomization, and everything it lists exists.
listed() {
  "$bin/python" - "${manifests[@]}" <<'PY'
import os, sys, yaml
k = yaml.safe_load(open("deploy/kubernetes/kustomization.yaml"))
listed = set(k.get("resources", []))
present = {os.path.basename(p) for p in sys.argv[1:]}
for name in sorted(present - listed):
    print(f"{name} is not in kustomization.yaml's resources")
for name in sorted(listed - present):
    print(f"kustomization.yaml lists {name}, which does not exist")
sys.exit(1 if listed != present else 0)
PY
}
check "kustomization.yaml lists every manifest" listed
if command -v kubectl >/dev/null; then
  rendered=$(mktemp)
  check "kubectl kustomize renders, and the result validates" \
    bash -c "kubectl kustomize deploy/kubernetes >'$rendered' \
      && '$bin/kubernetes-validate' --strict --quiet -k $k8s_newest '$rendered'"
  rm -f "$rendered"
else
  echo "skipped: kubectl kustomize (no kubectl here)"
fi
check "hadolint deploy/Dockerfile" "$bin/hadolint" deploy/Dockerfile
check "shellcheck" "$bin/shellcheck" deploy/container/strata-k8s deploy/container/strata-healthcheck \
  deploy/validate.sh deploy/test-container.sh
if command -v systemd-analyze >/dev/null; then
  # `verify` wants ExecStart's binary to exist: the installed path is
  # checked as text, the rest of the unit as systemd reads it.
  unit_dir=$(mktemp -d)
  sed 's|^ExecStart=/usr/local/bin/strata |ExecStart=/bin/true |' deploy/systemd/strata.service \
    >"$unit_dir/strata.service"
  check "systemd-analyze verify strata.service" \
    bash -c "grep -q '^ExecStart=/usr/local/bin/strata server' deploy/systemd/strata.service \
      && systemd-analyze verify '$unit_dir/strata.service'"
  rm -rf "$unit_dir"
else
  echo "skipped: systemd-analyze verify (no systemd here)"
fi

if [ "$failed" -gt 0 ]; then
  echo "deploy/validate.sh: $failed check(s) failed"
  exit 1
fi
echo "deploy/validate.sh: every check passed"
