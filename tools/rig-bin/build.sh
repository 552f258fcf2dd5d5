#!/usr/bin/env bash
# Build (or reuse) the pinned control-plane binaries the Flotilla rig runs:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm and,
# on request only, the Kubeflow training operator (component training-operator), umoci, which
# tools/image/build.sh uses to assemble the operator's OCI image without a container daemon,
# promrules, a small checker of Prometheus rule files built on Prometheus' own model/rulefmt and
# promql/parser (tools/rig-bin/promrules/main.go; the chart's PrometheusRule is checked with it),
# and Karmada (component karmada: its scheduler, controller-manager, aggregated-apiserver and webhook),
# the peer control plane that benchmarks/peer runs beside Flotilla (`make peer`).
#
# Binaries are cached outside the repository, keyed by component and version:
#   ${FLOTILLA_RIG_CACHE:-~/.cache/flotilla-rig}/<component>-<version>/
# A warm cache makes this a no-op that takes well under a second.
#
# Usage: tools/rig-bin/build.sh [component ...]
#   (default: etcd kubernetes kwok helm; training-operator, umoci, promrules and karmada only when named)
# Go builds run under `nice -n ${FLOTILLA_BUILD_NICE:-10}`: a cold build shares its cores with tests.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${FLOTILLA_RIG_CACHE:-$HOME/.cache/flotilla-rig}
mkdir -p "$cache"
start_all=$(date +%s)

log() { printf '[rig-bin %4ss] %s\n' "$(( $(date +%s) - start_all ))" "$*" >&2; }

need_disk() {
  local avail_kb
  avail_kb=$(df -Pk "$cache" | awk 'NR==2 {print $4}')
  if (( avail_kb < 6 * 1024 * 1024 )); then
    log "ERROR: only $((avail_kb / 1024)) MiB free under $cache; a cold build needs about 6 GiB"
    exit 1
  fi
}

# run_with_progress LABEL CMD... : run CMD, printing elapsed time every 30 s so a
# long cold build is never a silent wait.
run_with_progress() {
  local label=$1; shift
  local t0=$(date +%s)
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && log "$label: still building ($(( $(date +%s) - t0 ))s elapsed)"
  done
  wait "$pid"
  log "$label: done in $(( $(date +%s) - t0 ))s"
}

build() {  # build NAME VERSION WRAPPER LDFLAGS PKG:OUT ...
  local name=$1 version=$2 wrapper=$3 ldflags=$4; shift 4
  local dest="$cache/$name-$version"
  local missing=0 spec
  for spec in "$@"; do [[ -x "$dest/${spec#*:}" ]] || missing=1; done
  if (( missing == 0 )); then log "$name $version: cached in $dest"; return; fi
  need_disk
  log "$name $version: building ${#@} binaries (cold builds take minutes on 2 cores)"
  local tmp="$dest.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  for spec in "$@"; do
    local pkg=${spec%%:*} out=${spec#*:}
    (cd "$here/$wrapper" && run_with_progress "$name/$out" \
      nice -n "${FLOTILLA_BUILD_NICE:-10}" env CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags grpcnotrace \
        -ldflags "$ldflags" -o "$tmp/$out" "$pkg")
  done
  rm -rf "$dest"; mv "$tmp" "$dest"
  log "$name $version: $(du -sh "$dest" | cut -f1) in $dest"
}

k8s_ldflags() {
  local v=$K8S_VERSION minor
  minor=$(echo "$v" | cut -d. -f2)
  local x
  for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$x" "$v" "$x" "$x" "$minor" "$x"
  done
  printf -- '-s -w'
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(etcd kubernetes kwok helm)
for c in "${want[@]}"; do
  case "$c" in
    etcd) build etcd "$ETCD_VERSION" etcd "-s -w" go.etcd.io/etcd/server/v3:etcd ;;
    kubernetes) build kubernetes "$K8S_VERSION" k8s "$(k8s_ldflags)" \
      k8s.io/kubernetes/cmd/kube-apiserver:kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager:kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler:kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl:kubectl ;;
    kwok) build kwok "$KWOK_VERSION" kwok \
      "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok:kwok
      # KWOK v0.8 ships no built-in stages: keep the stage files beside the binary.
      if [[ ! -d "$cache/kwok-$KWOK_VERSION/stages" ]]; then
        src=$(cd "$here/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
        mkdir -p "$cache/kwok-$KWOK_VERSION/stages"
        cp -r "$src/kustomize/stage/." "$cache/kwok-$KWOK_VERSION/stages/"
        chmod -R u+w "$cache/kwok-$KWOK_VERSION/stages"
      fi ;;
    helm) build helm "$HELM_VERSION" helm \
      "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm:helm ;;
    training-operator) build training-operator "$TRAINING_OPERATOR_VERSION" training-operator "-s -w" \
      github.com/kubeflow/training-operator/cmd/training-operator.v1:training-operator ;;
    karmada) build karmada "$KARMADA_VERSION" karmada \
      "-s -w -X github.com/karmada-io/karmada/pkg/version.gitVersion=$KARMADA_VERSION -X github.com/karmada-io/karmada/pkg/version.gitTreeState=clean" \
      github.com/karmada-io/karmada/cmd/scheduler:karmada-scheduler \
      github.com/karmada-io/karmada/cmd/controller-manager:karmada-controller-manager \
      github.com/karmada-io/karmada/cmd/aggregated-apiserver:karmada-aggregated-apiserver \
      github.com/karmada-io/karmada/cmd/webhook:karmada-webhook
      # The CRDs (charts/karmada/_crds) and the deployment manifests (artifacts/deploy: webhook
      # configurations, APIService) ship in the module; keep them beside the binaries.
      kdest="$cache/karmada-$KARMADA_VERSION"
      if [[ ! -f "$kdest/crds/kustomization.yaml" || ! -f "$kdest/deploy/webhook-configuration.yaml" ]]; then
        src=$(cd "$here/karmada" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/karmada-io/karmada)
        rm -rf "$kdest/crds" "$kdest/deploy"; mkdir -p "$kdest/crds" "$kdest/deploy"
        cp -r "$src/charts/karmada/_crds/." "$kdest/crds/"
        cp -r "$src/artifacts/deploy/." "$kdest/deploy/"
        chmod -R u+w "$kdest/crds" "$kdest/deploy"
      fi ;;
    umoci) build umoci "$UMOCI_VERSION" umoci "-s -w" github.com/opencontainers/umoci/cmd/umoci:umoci ;;
    promrules) build promrules "$PROMETHEUS_VERSION" promrules "-s -w" .:promrules ;;
    *) log "unknown component: $c"; exit 2 ;;
  esac
done
log "all requested binaries ready under $cache"
