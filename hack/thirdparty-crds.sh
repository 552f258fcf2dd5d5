#!/usr/bin/env bash
# The upstream CRDs the e2e suite installs (the rig's fleets, the compatibility tests), fetched at
# pinned commits and checked byte for byte (git blob id), so CI needs nothing but this repository.
#
#   hack/thirdparty-crds.sh DIR      writes DIR/thirdparty-crds/*.yaml; then FLOTILLA_SHARED_DIR=DIR
#
# FLOTILLA_CRD_SOURCE=PATH copies from a local directory instead of downloading (still checked:
# e.g. the development machines' shared/thirdparty-crds). Files already present and intact are kept.
set -euo pipefail
out=${1:?usage: hack/thirdparty-crds.sh DIR}/thirdparty-crds
mkdir -p "$out"

# file | upstream repository | commit (the release tag's) | path there | git blob id
crds=(
  "kubeflow.org_pytorchjobs.yaml|kubeflow/trainer|4445c12aa62e4345b0c2c6ac9b215a70eca46ed7|manifests/base/crds/kubeflow.org_pytorchjobs.yaml|357f88d3864200c4d85422934bd296e610ab8ce7"
  "jobset.x-k8s.io_jobsets.yaml|kubernetes-sigs/jobset|f22e565ac3cc3265c7c45ef67ecffdc689af5d77|config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml|96add10d030c2ab2c94b1c774edd23c814692808"
  "leaderworkerset.x-k8s.io_leaderworkersets.yaml|kubernetes-sigs/lws|2161f38ff333f9e24d3c44adef7cd5d9787cac00|config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml|2b376d69063e46bec99d0d815d36948cdc87d128"
  "serving.kserve.io_inferenceservices.yaml|kserve/kserve|1fb781055dd1567164358233e1125142ca6ef1fe|config/crd/full/serving.kserve.io_inferenceservices.yaml|1e37d05b7a741eb40b9eb01c378dc9dc80eab3d9"
  "ray.io_rayjobs.yaml|ray-project/kuberay|59d663aeec13760646da3db9c1cf8cfe883e30b7|ray-operator/config/crd/bases/ray.io_rayjobs.yaml|c7d3f081af8cf08c256a8c33a0c3b6ea28b816a0"
  "ray.io_rayclusters.yaml|ray-project/kuberay|59d663aeec13760646da3db9c1cf8cfe883e30b7|ray-operator/config/crd/bases/ray.io_rayclusters.yaml|ff0be58ada3bd457605eff1f258c16df21e61e21"
  "scheduling.volcano.sh_podgroups.yaml|volcano-sh/volcano|0a56ed331897f5455916a44d3075671376d731d6|config/crd/volcano/bases/scheduling.volcano.sh_podgroups.yaml|057303feccb4613b181a1471dd02b9dfa81c37c1"
  "scheduling.x-k8s.io_podgroups.yaml|kubernetes-sigs/scheduler-plugins|8283b1452a3acd547ebbbc5ca9c7355aef46d04d|config/crd/bases/scheduling.x-k8s.io_podgroups.yaml|6c9ce2f872d93b5323822e1252d7c1d5ef64f244"
  "policy.karmada.io_propagationpolicies.yaml|karmada-io/karmada|0533b555e040596f4fff9b6a344efbaeed71d0cc|charts/karmada/_crds/bases/policy/policy.karmada.io_propagationpolicies.yaml|53b093c801dc6dedc891d6fca33b4b40dea59aad"
  "policy.karmada.io_clusterpropagationpolicies.yaml|karmada-io/karmada|0533b555e040596f4fff9b6a344efbaeed71d0cc|charts/karmada/_crds/bases/policy/policy.karmada.io_clusterpropagationpolicies.yaml|b22f9d7178215e91de939ee956a9c3a01cdf4f75"
  "policy.karmada.io_federatedresourcequotas.yaml|karmada-io/karmada|0533b555e040596f4fff9b6a344efbaeed71d0cc|charts/karmada/_crds/bases/policy/policy.karmada.io_federatedresourcequotas.yaml|c4657cc93f3b3e57b81d8772a794450538f8f704"
)

blob_id() { git hash-object --no-filters "$1"; }

for entry in "${crds[@]}"; do
  IFS='|' read -r file repo commit path blob <<< "$entry"
  target=$out/$file
  if [[ -f $target && $(blob_id "$target") == "$blob" ]]; then
    continue
  fi
  if [[ -n ${FLOTILLA_CRD_SOURCE:-} ]]; then
    cp "$FLOTILLA_CRD_SOURCE/$file" "$target.part"
  else
    curl -fsSL --retry 3 -o "$target.part" "https://raw.githubusercontent.com/$repo/$commit/$path"
  fi
  got=$(blob_id "$target.part")
  if [[ $got != "$blob" ]]; then
    rm -f "$target.part"
    echo "thirdparty-crds: $file from $repo@${commit:0:12} has blob $got, expected $blob" >&2
    exit 1
  fi
  mv "$target.part" "$target"
done
echo "thirdparty-crds: ${#crds[@]} CRDs in $out"
