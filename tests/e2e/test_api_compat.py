"""Manifests written for Karmada, Volcano and scheduler-plugins are accepted by their own CRDs (on
``compat_server``) and, with only apiVersion changed, by ours (on ``hub``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_e2e_support import OUR_CRDS, error_message, with_api_version
from kubernetes.client import ApiException

from flotilla.api.paths import thirdparty_crds_dir
from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle

pytestmark = pytest.mark.e2e

NS = "api-compat"
KARMADA = "policy.karmada.io/v1alpha1"
VOLCANO = "scheduling.volcano.sh/v1beta1"
COSCHEDULING = "scheduling.x-k8s.io/v1alpha1"
OURS = "flotilla.dev/v1alpha1"
UPSTREAM_CRDS = [
    "policy.karmada.io_propagationpolicies.yaml",
    "policy.karmada.io_clusterpropagationpolicies.yaml",
    "policy.karmada.io_federatedresourcequotas.yaml",
    "scheduling.volcano.sh_podgroups.yaml",
    "scheduling.x-k8s.io_podgroups.yaml",
]


def _doc(
    api_version: str, kind: str, name: str, spec: dict[str, Any], namespaced: bool = True
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": NS} if namespaced else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec}


def _pp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _doc(KARMADA, "PropagationPolicy", name, spec)


def _cpp(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _doc(KARMADA, "ClusterPropagationPolicy", name, spec, namespaced=False)


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"}
MEMBERS = {"clusterNames": ["member1", "member2", "member3"]}

KARMADA_MANIFESTS = [
    _pp(
        "static-weights",
        {
            "resourceSelectors": [DEPLOYMENT],
            "placement": {
                "clusterAffinity": {"clusterNames": ["member1", "member2"]},
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Weighted",
                    "weightPreference": {
                        "staticWeightList": [
                            {"targetCluster": {"clusterNames": ["member1"]}, "weight": 1},
                            {"targetCluster": {"clusterNames": ["member2"]}, "weight": 2},
                        ]
                    },
                },
            },
        },
    ),
    _pp(
        "fallback-groups",
        {
            "resourceSelectors": [DEPLOYMENT],
            "placement": {
                "clusterAffinities": [
                    {"affinityName": "local-clusters", "clusterNames": ["member1", "member2"]},
                    {
                        "affinityName": "cloud-clusters",
                        "labelSelector": {"matchLabels": {"provider": "aws"}},
                        "exclude": ["member4"],
                        "overflowAffinities": [{"affinityName": "burst", "clusterNames": ["member5"]}],
                    },
                ],
                "clusterTolerations": [
                    {
                        "key": "cluster.karmada.io/not-ready",
                        "operator": "Exists",
                        "effect": "NoExecute",
                        "tolerationSeconds": 30,
                    },
                    {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
                ],
                "spreadConstraints": [
                    {"spreadByField": "region", "maxGroups": 2, "minGroups": 1},
                    {"spreadByField": "cluster", "maxGroups": 3, "minGroups": 2},
                ],
            },
        },
    ),
    _pp(
        "dynamic-weights-and-knobs",
        {
            "resourceSelectors": [DEPLOYMENT, {"apiVersion": "v1", "kind": "Service", "name": "nginx"}],
            "propagateDeps": True,
            "priority": 10,
            "preemption": "Always",
            "conflictResolution": "Overwrite",
            "schedulerName": "default-scheduler",
            "activationPreference": "Lazy",
            "dependentOverrides": ["nginx-override"],
            "preserveResourcesOnDeletion": True,
            "suspension": {"dispatching": False, "dispatchingOnClusters": {"clusterNames": ["member3"]}},
            "placement": {
                "clusterAffinity": MEMBERS,
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Weighted",
                    "weightPreference": {"dynamicWeight": "AvailableReplicas"},
                },
            },
        },
    ),
    _pp(
        "application-failover",
        {
            "resourceSelectors": [DEPLOYMENT],
            "association": True,
            "placement": {
                "clusterAffinity": MEMBERS,
                "replicaScheduling": {"replicaSchedulingType": "Duplicated"},
            },
            "failover": {
                "application": {
                    "decisionConditions": {"tolerationSeconds": 120},
                    "purgeMode": "Gracefully",
                    "gracePeriodSeconds": 600,
                    "statePreservation": {
                        "rules": [{"aliasLabelName": "app.karmada.io/replicas", "jsonPath": "{.replicas}"}]
                    },
                },
                "cluster": {
                    "purgeMode": "Directly",
                    "statePreservation": {"rules": [{"aliasLabelName": "phase", "jsonPath": "{.phase}"}]},
                },
            },
        },
    ),
    _pp(
        "selectors-and-aggregated",
        {
            "resourceSelectors": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "namespace": NS,
                    "labelSelector": {
                        "matchLabels": {"tier": "frontend"},
                        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}],
                    },
                }
            ],
            "placement": {
                "clusterAffinity": {
                    "fieldSelector": {
                        "matchExpressions": [
                            {"key": "provider", "operator": "In", "values": ["aws", "gcp"]},
                            {"key": "region", "operator": "NotIn", "values": ["us-west"]},
                        ]
                    },
                    "exclude": ["member1"],
                },
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Aggregated",
                },
                "workloadAffinity": {
                    "affinity": {"groupByLabelKey": "app.group"},
                    "antiAffinity": {"groupByLabelKey": "app.replica-set"},
                },
            },
            "schedulePriority": {"priorityClassSource": "KubePriorityClass", "priorityClassName": "high"},
        },
    ),
    _cpp(
        "cluster-roles",
        {
            "resourceSelectors": [
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "reader"},
                {"apiVersion": "v1", "kind": "Namespace", "name": "team-a"},
            ],
            "propagateDeps": True,
            "placement": {
                "clusterAffinity": {
                    "labelSelector": {"matchExpressions": [{"key": "environment", "operator": "Exists"}]}
                },
                "replicaScheduling": {"replicaSchedulingType": "Duplicated"},
            },
            "priority": 5,
        },
    ),
    _cpp(
        "never-purge",
        {
            "resourceSelectors": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "x"}
            ],
            "placement": {
                "clusterAffinities": [
                    {"affinityName": "primary", "clusterNames": ["member1"]},
                    {"affinityName": "backup", "clusterNames": ["member2"]},
                ],
                "spreadConstraints": [
                    {"spreadByLabel": "topology.karmada.io/zone", "maxGroups": 1, "minGroups": 1}
                ],
            },
            "failover": {
                "application": {"decisionConditions": {"tolerationSeconds": 60}, "purgeMode": "Never"}
            },
        },
    ),
    _doc(
        KARMADA,
        "FederatedResourceQuota",
        "team-quota",
        {
            "overall": {"cpu": "100", "memory": "200Gi", "nvidia.com/gpu": 16, "pods": 500},
            "staticAssignments": [
                {"clusterName": "member1", "hard": {"cpu": "40", "memory": "80Gi", "nvidia.com/gpu": 8}},
                {"clusterName": "member2", "hard": {"cpu": 50}},
            ],
        },
    ),
    _doc(KARMADA, "FederatedResourceQuota", "overall-only", {"overall": {"cpu": "1.5", "memory": "512Mi"}}),
]

PODGROUP_MANIFESTS = [
    _doc(
        VOLCANO,
        "PodGroup",
        "volcano-tf",
        {
            "minMember": 3,
            "minTaskMember": {"ps": 1, "worker": 2},
            "minResources": {"cpu": "3", "memory": "6Gi", "nvidia.com/gpu": 2},
            "queue": "default",
            "priorityClassName": "high-priority",
        },
    ),
    _doc(
        VOLCANO,
        "PodGroup",
        "volcano-topology",
        {
            "minMember": 8,
            "queue": "training",
            "networkTopology": {"mode": "hard", "highestTierAllowed": 2},
            "subGroupPolicy": [
                {
                    "name": "per-rack",
                    "subGroupSize": 4,
                    "minSubGroups": 2,
                    "matchLabelKeys": ["volcano.sh/task-spec"],
                    "labelSelector": {"matchLabels": {"app": "llm"}},
                    "networkTopology": {"mode": "soft", "highestTierName": "rack"},
                }
            ],
        },
    ),
    _doc(VOLCANO, "PodGroup", "volcano-zero", {"minMember": 0}),
    _doc(
        COSCHEDULING,
        "PodGroup",
        "coscheduling-nginx",
        {"minMember": 3, "scheduleTimeoutSeconds": 10, "minResources": {"cpu": "3", "memory": "3Gi"}},
    ),
    _doc(COSCHEDULING, "PodGroup", "coscheduling-min", {"minMember": 1}),
]


@pytest.fixture(scope="module")
def upstream_api(compat_server: ClusterHandle) -> Iterator[Any]:
    api = compat_server.api_client()
    kube.install_crds(api, [thirdparty_crds_dir() / name for name in UPSTREAM_CRDS], timeout=120)
    kube.ensure_namespace(api, NS)
    yield api
    api.close()


@pytest.fixture(scope="module")
def hub_api(hub: ClusterHandle) -> Iterator[Any]:
    api = hub.api_client()
    kube.install_crds(api, OUR_CRDS, timeout=120)
    kube.ensure_namespace(api, NS)
    yield api
    api.close()


def _accepted(api: Any, obj: dict[str, Any]) -> dict[str, Any]:
    try:
        stored = kube.apply(api, obj)
    except ApiException as exc:
        pytest.fail(
            f"{obj['apiVersion']} {obj['kind']} {obj['metadata']['name']} rejected: {error_message(exc)}"
        )
    return stored


def _pruned(sent: Any, stored: Any, path: str = "spec") -> set[str]:
    """Paths present in what was sent but missing from what the API server stored."""
    missing: set[str] = set()
    if isinstance(sent, dict):
        for key, value in sent.items():
            if not isinstance(stored, dict) or key not in stored:
                missing.add(f"{path}.{key}")
            else:
                missing |= _pruned(value, stored[key], f"{path}.{key}")
    elif isinstance(sent, list) and isinstance(stored, list):
        for index, (item, kept) in enumerate(zip(sent, stored, strict=False)):
            missing |= _pruned(item, kept, f"{path}[{index}]")
    return missing


def _check(upstream_api: Any, hub_api: Any, manifest: dict[str, Any]) -> None:
    ours = with_api_version(manifest, OURS)
    try:
        upstream = _accepted(upstream_api, manifest)
        stored = _accepted(hub_api, ours)
        # Our CRD keeps every field the upstream CRD keeps.
        assert _pruned(manifest["spec"], stored["spec"]) <= _pruned(manifest["spec"], upstream["spec"])
    finally:
        kube.delete(upstream_api, manifest)
        kube.delete(hub_api, ours)


def test_manifests_cover_most_karmada_fields() -> None:
    from flotilla.api.compat import KARMADA_POLICY_FIELDS

    def paths(obj: Any, prefix: str = "") -> set[str]:
        found = {prefix} if prefix else set()
        if isinstance(obj, dict):
            for key, value in obj.items():
                found |= paths(value, f"{prefix}.{key}" if prefix else key)
        elif isinstance(obj, list):
            for item in obj:
                found |= paths(item, prefix + "[]")
        return found

    used = set().union(*(paths({"spec": m["spec"]}) for m in KARMADA_MANIFESTS if "Policy" in m["kind"]))
    covered = [f.path for f in KARMADA_POLICY_FIELDS if f.path in used]
    assert len(covered) >= 0.9 * len(KARMADA_POLICY_FIELDS), sorted(
        {f.path for f in KARMADA_POLICY_FIELDS} - set(covered)
    )


@pytest.mark.parametrize(
    "manifest", KARMADA_MANIFESTS, ids=[f"{m['kind']}-{m['metadata']['name']}" for m in KARMADA_MANIFESTS]
)
def test_karmada_manifest_is_accepted_by_both(
    upstream_api: Any, hub_api: Any, manifest: dict[str, Any]
) -> None:
    _check(upstream_api, hub_api, manifest)


@pytest.mark.parametrize(
    "manifest",
    PODGROUP_MANIFESTS,
    ids=[f"{m['apiVersion'].split('/')[0]}-{m['metadata']['name']}" for m in PODGROUP_MANIFESTS],
)
def test_podgroup_manifest_is_accepted_by_both(
    upstream_api: Any, hub_api: Any, manifest: dict[str, Any]
) -> None:
    _check(upstream_api, hub_api, manifest)
