#!/usr/bin/env bash
# Flotilla on kind clusters, from this repository alone (users' CI, or any machine with Docker):
#
#   1. kind clusters: a hub and members a, b, c;
#   2. the operator image, built from the Dockerfile and loaded into the hub;
#   3. the chart installed into the hub (that image, the webhook, leader election);
#   4. the members joined with the CLI (kubectl flotilla join: least-privilege ServiceAccounts);
#   5. a smoke check of that install: members Ready, a Deployment placed on a member by the
#      in-cluster operator, its pods on the hub (a hub with controllers) held by the gate;
#   6. the in-cluster operator removed (unjoin, helm uninstall), and the same e2e suite as on the
#      local rig run against these clusters (FLOTILLA_E2E_BACKEND=kind: the suite runs its own
#      operator, adds the fleet's CRDs and KWOK GPU nodes, and skips what needs the process rig).
#
# Needs: docker, kind, kubectl, helm-compatible network access, go (for the pinned KWOK and helm
# binaries), python3 (3.11+), git, curl.
# Usage: hack/kind-e2e.sh [pytest args...]
#   KEEP_CLUSTERS=1   keep the clusters afterwards
#   SKIP_SUITE=1      stop after the smoke check (steps 1-5)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_IMAGE=${K8S_IMAGE:-kindest/node:v1.34.0}
IMAGE=flotilla:e2e
NS="flotilla-system"
dir=$(mktemp -d)
clusters=(hub a b c)
members=(a b c)
log() { printf '[kind-e2e %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
cleanup() {
  if [[ -z "${KEEP_CLUSTERS:-}" ]]; then
    for c in "${clusters[@]}"; do kind delete cluster --name "flotilla-$c" >/dev/null 2>&1 || true; done
  fi
}
trap cleanup EXIT

log "1/6 kind clusters: ${clusters[*]}"
for c in "${clusters[@]}"; do
  kind create cluster --name "flotilla-$c" --image "$K8S_IMAGE" --kubeconfig "$dir/$c.kubeconfig" --wait 120s
done
hub=(--kubeconfig "$dir/hub.kubeconfig")

log "tools: upstream CRDs (pinned, checked), KWOK and helm, the dev venv"
bash hack/thirdparty-crds.sh "$dir/shared"
export FLOTILLA_SHARED_DIR=$dir/shared
bash tools/rig-bin/build.sh kwok helm
make venv
helm=$(.venv/bin/python -c 'from flotilla.rig.binaries import helm_path; print(helm_path())')
flotilla=.venv/bin/kubectl-flotilla

log "2/6 image $IMAGE (Dockerfile), loaded into the hub"
version=$(.venv/bin/python -c 'import flotilla; print(flotilla.__version__)')
docker build --build-arg PACKAGE_VERSION="$version" -t "$IMAGE" .
kind load docker-image "$IMAGE" --name flotilla-hub

log "3/6 chart into the hub"
"$helm" install flotilla charts/flotilla "${hub[@]}" --namespace "$NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE#*:}" --set image.pullPolicy=Never \
  --wait --timeout 5m

log "4/6 members joined with the CLI"
for m in "${members[@]}"; do
  # The operator runs in the hub's kind node: it reaches a member on the kind network.
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "flotilla-$m-control-plane")
  "$flotilla" join "$m" "${hub[@]}" --cluster-kubeconfig "$dir/$m.kubeconfig" \
    --cluster-server "https://$ip:6443" --labels "e2e=kind"
done

log "5/6 smoke: members Ready, a Deployment placed by the in-cluster operator, held on the hub"
kubectl "${hub[@]}" wait --for=condition=Ready memberclusters --all --timeout=300s
"$flotilla" get clusters "${hub[@]}"
kubectl "${hub[@]}" create namespace smoke
kubectl "${hub[@]}" apply -f - <<'EOF'
apiVersion: flotilla.dev/v1alpha1
kind: PropagationPolicy
metadata: {name: smoke, namespace: smoke}
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment}]
  placement: {clusterAffinity: {clusterNames: [a]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: smoke}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.k8s.io/pause:3.10, resources: {requests: {cpu: 10m}}}]
EOF
within() {  # within SECONDS COMMAND...: run COMMAND every 2 s until it succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "timed out: $*" >&2; return 1; }
    sleep 2
  done
}
within 180 kubectl "${hub[@]}" -n smoke get resourcebinding web-deployment
kubectl "${hub[@]}" -n smoke wait --for=condition=Scheduled resourcebinding/web-deployment --timeout=180s
within 180 kubectl --kubeconfig "$dir/a.kubeconfig" -n smoke get deployment web
hub_pod() { [[ -n $(kubectl "${hub[@]}" -n smoke get pods -l app=web -o name) ]]; }
within 120 hub_pod
gates=$(kubectl "${hub[@]}" -n smoke get pods -l app=web -o jsonpath='{.items[*].spec.schedulingGates[*].name}')
nodes=$(kubectl "${hub[@]}" -n smoke get pods -l app=web -o jsonpath='{.items[*].spec.nodeName}')
if [[ $gates != *flotilla.dev/hub-hold* || -n $nodes ]]; then
  echo "hub pods of smoke/web: gates '$gates', nodes '$nodes' (want the hub-hold gate, no node)" >&2
  exit 1
fi
"$flotilla" get workloads -n smoke "${hub[@]}"

log "6/6 the in-cluster operator out of the way; the e2e suite on these clusters"
kubectl "${hub[@]}" delete namespace smoke --wait=true
kubectl --kubeconfig "$dir/a.kubeconfig" delete namespace smoke --ignore-not-found --wait=false
for m in "${members[@]}"; do
  "$flotilla" unjoin "$m" "${hub[@]}" --cluster-kubeconfig "$dir/$m.kubeconfig"
done
"$helm" uninstall flotilla "${hub[@]}" --namespace "$NS" --wait
if [[ -n "${SKIP_SUITE:-}" ]]; then
  exit 0
fi
export FLOTILLA_E2E_BACKEND=kind
# The suite's operator runs on this machine and serves the webhooks; a kind hub reaches it
# through the kind network's gateway (its IPv4 address).
FLOTILLA_E2E_WEBHOOK_HOST=$(docker network inspect kind -f '{{range .IPAM.Config}}{{.Gateway}} {{end}}' \
  | tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$')
export FLOTILLA_E2E_WEBHOOK_HOST
export FLOTILLA_KUBECONFIGS="hub=$dir/hub.kubeconfig,a=$dir/a.kubeconfig,b=$dir/b.kubeconfig,c=$dir/c.kubeconfig"
.venv/bin/pytest tests/e2e -q "$@"
