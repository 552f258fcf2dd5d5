#!/usr/bin/env bash
# Run the e2e suite on kind clusters (where Docker exists, e.g. in users' CI) instead of the
# local process rig: one hub and members a, b, c. The rig then adopts them: it installs the
# fleet's third-party CRDs and adds the fleet's KWOK GPU nodes, so the tests are the same.
#
# Needs: docker, kind, go (for the pinned kwok binary), python3.
# Usage: hack/kind-e2e.sh [pytest args...]     (KEEP_CLUSTERS=1 keeps the clusters afterwards)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_IMAGE=${K8S_IMAGE:-kindest/node:v1.34.0}
dir=$(mktemp -d)
clusters=(hub a b c)
cleanup() {
  if [[ -z "${KEEP_CLUSTERS:-}" ]]; then
    for c in "${clusters[@]}"; do kind delete cluster --name "flotilla-$c" >/dev/null 2>&1 || true; done
  fi
}
trap cleanup EXIT

for c in "${clusters[@]}"; do
  kind create cluster --name "flotilla-$c" --image "$K8S_IMAGE" --kubeconfig "$dir/$c.kubeconfig" --wait 120s
done
bash tools/rig-bin/build.sh kwok helm
make venv
export FLOTILLA_E2E_BACKEND=kind
# The operator runs on this machine and serves the quota webhook; a kind hub reaches it through
# the kind network's gateway (its IPv4 address).
FLOTILLA_E2E_WEBHOOK_HOST=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' \
  | tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$')
export FLOTILLA_E2E_WEBHOOK_HOST
export FLOTILLA_KUBECONFIGS="hub=$dir/hub.kubeconfig,a=$dir/a.kubeconfig,b=$dir/b.kubeconfig,c=$dir/c.kubeconfig"
.venv/bin/pytest tests/e2e -q "$@"
