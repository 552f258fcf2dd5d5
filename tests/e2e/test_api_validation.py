"""Invalid manifests are rejected by the hub API server (HTTP 422) with a message naming the field.

Each case is one manifest (optionally preceded by a valid one, for immutability rules). The checks
come from the CRD schema: types, enums, bounds, patterns and the CEL rules declared in the models.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from api_e2e_support import OUR_CRDS, apply_expecting_rejection

from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle

pytestmark = pytest.mark.e2e

NS = "api-validation"
V = "flotilla.dev/v1alpha1"


def _obj(kind: str, name: str, spec: dict[str, Any], namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": NS} if namespaced else {})}
    return {"apiVersion": V, "kind": kind, "metadata": meta, "spec": spec}


SELECTORS = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}]


def pp(placement: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceSelectors": SELECTORS, **spec}
    if placement is not None:
        body["placement"] = placement
    return _obj("PropagationPolicy", "bad-policy", body)


def weighted(preference: dict[str, Any]) -> dict[str, Any]:
    return {
        "replicaScheduling": {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": preference,
        }
    }


def frq(spec: dict[str, Any]) -> dict[str, Any]:
    return _obj("FederatedResourceQuota", "bad-quota", spec)


def pg(spec: dict[str, Any]) -> dict[str, Any]:
    return _obj("PodGroup", "bad-group", spec)


def mc(spec: dict[str, Any]) -> dict[str, Any]:
    return _obj("MemberCluster", "bad-cluster", spec, namespaced=False)


SECRET_REF = {"namespace": "flotilla-system", "name": "member-kubeconfig"}
RESOURCE = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "web"}


def rb(**spec: Any) -> dict[str, Any]:
    return _obj("ResourceBinding", "bad-binding", {"resource": RESOURCE, **spec})


def ic(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {"apiVersion": "ray.io/v1", "kind": "RayCluster"},
        "components": [{"name": "head", "replicas": 1, "podTemplatePath": ".spec.headGroupSpec.template"}],
    }
    spec.update(changes)
    return _obj("InterpreterCustomization", "bad-customization", spec, namespaced=False)


def ic_component(**component: Any) -> dict[str, Any]:
    return ic(components=[{"name": "workers", "podTemplatePath": ".spec.template", **component}])


@dataclass
class Case:
    id: str
    manifest: dict[str, Any]
    field_path: str
    before: dict[str, Any] | None = None
    message: str = ""
    verb: str = "apply"
    """Server-side apply answers duplicate list-map keys with 500 before validation; create gives 422."""


def _updated(obj: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(obj)
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


GOOD_PG = pg({"minMember": 2, "queue": "research"})
GOOD_RB = rb(clusters=[{"name": "a", "replicas": 1}])

CASES = [
    # PropagationPolicy / ClusterPropagationPolicy
    Case(
        "pp-affinity-and-affinities",
        pp({"clusterAffinity": {"clusterNames": ["a"]}, "clusterAffinities": [{"affinityName": "x"}]}),
        "spec.placement.clusterAffinities",
        message="mutually exclusive",
    ),
    Case(
        "pp-static-and-dynamic-weights",
        pp(
            weighted(
                {
                    "dynamicWeight": "AvailableReplicas",
                    "staticWeightList": [{"targetCluster": {"clusterNames": ["a"]}, "weight": 1}],
                }
            )
        ),
        "spec.placement.replicaScheduling.weightPreference",
        message="exactly one of staticWeightList",
    ),
    Case(
        "pp-empty-weight-preference",
        pp(weighted({"staticWeightList": []})),
        "spec.placement.replicaScheduling.weightPreference",
        message="exactly one of staticWeightList",
    ),
    Case(
        "pp-zero-weight",
        pp(weighted({"staticWeightList": [{"targetCluster": {"clusterNames": ["a"]}, "weight": 0}]})),
        "spec.placement.replicaScheduling.weightPreference.staticWeightList[0].weight",
    ),
    Case(
        "pp-min-groups-above-max",
        pp({"spreadConstraints": [{"spreadByField": "cluster", "minGroups": 3, "maxGroups": 2}]}),
        "spec.placement.spreadConstraints[0].minGroups",
        message="minGroups must be less than or equal to maxGroups",
    ),
    Case(
        "pp-spread-field-and-label",
        pp({"spreadConstraints": [{"spreadByField": "cluster", "spreadByLabel": "rack"}]}),
        "spec.placement.spreadConstraints[0].spreadByLabel",
    ),
    Case(
        "pp-spread-region-without-cluster",
        pp({"spreadConstraints": [{"spreadByField": "region", "maxGroups": 2}]}),
        "spec.placement.spreadConstraints",
        message="spreadByField 'cluster' is required",
    ),
    Case(
        "pp-spread-unknown-field",
        pp({"spreadConstraints": [{"spreadByField": "rack"}]}),
        "spec.placement.spreadConstraints[0].spreadByField",
    ),
    Case(
        "pp-no-selectors",
        _obj("PropagationPolicy", "bad-policy", {"resourceSelectors": []}),
        "spec.resourceSelectors",
    ),
    Case(
        "pp-selector-without-kind",
        _obj("PropagationPolicy", "bad-policy", {"resourceSelectors": [{"apiVersion": "v1"}]}),
        "spec.resourceSelectors[0].kind",
    ),
    Case(
        "pp-negative-toleration-seconds",
        pp(failover={"application": {"decisionConditions": {"tolerationSeconds": -1}}}),
        "spec.failover.application.decisionConditions.tolerationSeconds",
    ),
    Case(
        "pp-grace-period-with-directly",
        pp(
            failover={
                "application": {"decisionConditions": {}, "purgeMode": "Directly", "gracePeriodSeconds": 60}
            }
        ),
        "spec.failover.application.gracePeriodSeconds",
    ),
    Case(
        "pp-negative-grace-period",
        pp(failover={"application": {"decisionConditions": {}, "gracePeriodSeconds": -60}}),
        "spec.failover.application.gracePeriodSeconds",
    ),
    Case(
        "pp-unknown-scheduling-type",
        pp({"replicaScheduling": {"replicaSchedulingType": "Split"}}),
        "spec.placement.replicaScheduling.replicaSchedulingType",
    ),
    Case(
        "pp-exists-toleration-with-value",
        pp({"clusterTolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
        "spec.placement.clusterTolerations[0].value",
    ),
    Case(
        "pp-toleration-seconds-without-noexecute",
        pp({"clusterTolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 30}]}),
        "spec.placement.clusterTolerations[0].tolerationSeconds",
    ),
    Case(
        "pp-duplicate-affinity-names",
        pp({"clusterAffinities": [{"affinityName": "x"}, {"affinityName": "x"}]}),
        "spec.placement.clusterAffinities[1]",
        message="Duplicate value",
        verb="create",
    ),
    Case(
        "pp-field-selector-unknown-key",
        pp({"clusterAffinity": {"fieldSelector": {"matchExpressions": [{"key": "rack", "operator": "In"}]}}}),
        "spec.placement.clusterAffinity.fieldSelector.matchExpressions[0].key",
    ),
    Case(
        "cpp-unknown-preemption",
        _obj(
            "ClusterPropagationPolicy",
            "bad-cpp",
            {"resourceSelectors": SELECTORS, "preemption": "Sometimes"},
            namespaced=False,
        ),
        "spec.preemption",
    ),
    # FederatedResourceQuota
    Case(
        "frq-assignment-resource-not-in-overall",
        frq(
            {
                "overall": {"nvidia.com/gpu": 8},
                "staticAssignments": [{"clusterName": "a", "hard": {"cpu": 4}}],
            }
        ),
        "spec.staticAssignments",
        message="must also be in overall",
    ),
    Case("frq-bad-quantity", frq({"overall": {"nvidia.com/gpu": "lots"}}), "spec.overall"),
    Case(
        "frq-duplicate-cluster",
        frq(
            {
                "overall": {"cpu": 8},
                "staticAssignments": [
                    {"clusterName": "a", "hard": {"cpu": 1}},
                    {"clusterName": "a", "hard": {}},
                ],
            }
        ),
        "spec.staticAssignments[1]",
        message="Duplicate value",
        verb="create",
    ),
    Case("frq-missing-overall", frq({}), "spec.overall"),
    # PodGroup
    Case("pg-negative-min-member", pg({"minMember": -1}), "spec.minMember"),
    Case(
        "pg-task-members-above-min-member",
        pg({"minMember": 2, "minTaskMember": {"master": 1, "worker": 2}}),
        "spec.minTaskMember",
        message="must not exceed minMember",
    ),
    Case("pg-negative-task-member", pg({"minTaskMember": {"worker": -1}}), "spec.minTaskMember"),
    Case("pg-negative-timeout", pg({"scheduleTimeoutSeconds": -5}), "spec.scheduleTimeoutSeconds"),
    Case("pg-zero-max-clusters", pg({"maxClusters": 0}), "spec.maxClusters"),
    Case(
        "pg-queue-is-immutable",
        _updated(GOOD_PG, ["spec", "queue"], "production"),
        "spec.queue",
        before=GOOD_PG,
        message="queue is immutable",
    ),
    # MemberCluster
    Case(
        "mc-unknown-taint-effect",
        mc({"secretRef": SECRET_REF, "taints": [{"key": "k", "effect": "Evict"}]}),
        "spec.taints[0].effect",
    ),
    Case("mc-missing-secret-ref", mc({"region": "eu-west"}), "spec.secretRef"),
    Case(
        "mc-bad-secret-namespace",
        mc({"secretRef": {"namespace": "Flotilla_System", "name": "x"}}),
        "spec.secretRef.namespace",
    ),
    # ResourceBinding
    Case(
        "rb-resource-is-immutable",
        _updated(GOOD_RB, ["spec", "resource", "name"], "other"),
        "spec.resource",
        before=GOOD_RB,
        message="immutable",
    ),
    Case(
        "rb-task-member-not-a-component",
        rb(
            components=[{"name": "Worker", "replicas": 4}],
            schedulingGroup={"minMember": 4, "minTaskMember": {"Master": 1}},
        ),
        "spec.schedulingGroup.minTaskMember",
        message="must name one of spec.components",
    ),
    Case("rb-negative-replicas", rb(clusters=[{"name": "a", "replicas": -1}]), "spec.clusters[0].replicas"),
    Case(
        "rb-min-resources-not-a-quantity",
        rb(schedulingGroup={"minMember": 2, "minResources": {"cpu": "lots"}}),
        "spec.schedulingGroup.minResources.cpu",
    ),
    # InterpreterCustomization
    Case(
        "ic-replicas-and-replicas-path",
        ic_component(replicas=1, replicasPath=".spec.replicas"),
        "spec.components[0].replicasPath",
        message="exactly one of replicas or replicasPath",
    ),
    Case(
        "ic-neither-replicas-nor-path",
        ic_component(),
        "spec.components[0].replicasPath",
        message="exactly one of replicas or replicasPath",
    ),
    Case("ic-path-without-leading-dot", ic(replicaPath="spec.replicas"), "spec.replicaPath"),
    Case(
        "ic-wildcard-outside-components", ic(statusPaths=[".status.groups[*].ready"]), "spec.statusPaths[0]"
    ),
    Case(
        "ic-bad-component-path",
        ic_component(replicas=1, podTemplatePath=".spec..template"),
        "spec.components[0].podTemplatePath",
    ),
    Case("ic-no-components", ic(components=[]), "spec.components"),
    Case(
        "ic-unknown-aggregation",
        ic(statusAggregation=[{"path": ".status.ready", "operation": "Avg"}]),
        "spec.statusAggregation[0].operation",
    ),
    Case(
        "ic-no-healthy-values",
        ic(health={"path": ".status.state", "healthyValues": []}),
        "spec.health.healthyValues",
    ),
]


@pytest.fixture(scope="module")
def hub_api(hub: ClusterHandle) -> Iterator[Any]:
    api = hub.api_client()
    kube.install_crds(api, OUR_CRDS, timeout=120)
    kube.ensure_namespace(api, NS)
    yield api
    api.close()


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_is_rejected(hub_api: Any, case: Case) -> None:
    if case.before is not None:
        kube.apply(hub_api, case.before)
    try:
        status, message = apply_expecting_rejection(hub_api, case.manifest, case.verb)
    finally:
        if case.before is not None:
            kube.delete(hub_api, case.before)
    assert status == 422, f"{case.id}: expected 422, got {status}: {message}"
    assert case.field_path in message, f"{case.id}: {case.field_path!r} not in {message!r}"
    assert case.message in message, message
