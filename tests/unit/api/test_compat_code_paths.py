"""The compatibility tables against the code: every field marked supported is read by the code that
acts on it, and every field marked ignored gets the IgnoredField warning.

"Read" is shown by a change: for each supported field, a base object and the same object with only
that field set differently go through the code path that acts on it (policy matching and
preemption as the detector runs them, the binding and scheduler input as the scheduling controller
builds them, the failover controller's purge mode, the quota ledger, the gang spec from a
PodGroup), and what comes out must differ. A supported row without a probe here fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from flotilla.api import compat
from flotilla.controllers.detector import preempts
from flotilla.controllers.eviction import purge_mode
from flotilla.controllers.failover import FailoverController
from flotilla.controllers.matching import best_policy, policy_from_body, policy_strength
from flotilla.controllers.workloads import desired_binding, scheduler_workload
from flotilla.interpreter import InterpreterRegistry
from flotilla.quota.ledger import Quota

REGISTRY = InterpreterRegistry()
TEMPLATE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "team", "labels": {"app": "web"}},
    "spec": {
        "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}},
    },
}
JOB: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "PyTorchJob",
    "metadata": {"name": "train", "namespace": "team"},
    "spec": {
        "pytorchReplicaSpecs": {
            role: {"replicas": n, "template": {"spec": {"containers": [{"name": "pytorch"}]}}}
            for role, n in (("Master", 1), ("Worker", 3))
        }
    },
}


def policy(kind: str = "PropagationPolicy", **spec: Any) -> dict[str, Any]:
    meta = {"name": "p", "namespace": "team"} if kind == "PropagationPolicy" else {"name": "p"}
    base = {
        "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
        "placement": {"clusterAffinity": {"clusterNames": ["a", "b"]}},
    }
    return {"apiVersion": "flotilla.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": base | spec}


def scheduler_input(body: dict[str, Any]) -> Any:
    """What the scheduler is given for TEMPLATE under the policy (detector -> binding -> workload)."""
    ref = policy_from_body(body)
    binding = desired_binding(TEMPLATE, ref, REGISTRY.get("apps/v1", "Deployment"))  # type: ignore[arg-type]
    return (binding["spec"]["priority"], scheduler_workload(binding).to_dict())


def match(body: dict[str, Any]) -> int:
    return policy_strength(policy_from_body(body), TEMPLATE)


def beats_a_rival(body: dict[str, Any]) -> bool:
    """Whether the policy wins against "a-rival", priority 1, selecting the same template."""
    rival = policy_from_body(policy(priority=1) | {"metadata": {"name": "a-rival", "namespace": "team"}})
    return best_policy([rival, policy_from_body(body)], TEMPLATE) is not rival


def takes_over(body: dict[str, Any]) -> bool:
    claimed = policy_from_body(policy(priority=0) | {"metadata": {"name": "claimed", "namespace": "team"}})
    return preempts(policy_from_body(body), claimed)


def cluster_purge_mode(body: dict[str, Any]) -> str:
    """As FailoverController._purge_mode reads the claiming policy."""
    cluster = (body["spec"].get("failover") or {}).get("cluster") or {}
    return purge_mode(cluster.get("purgeMode"), "Gracefully")


def application_rule(body: dict[str, Any], pod_group: dict[str, Any] | None = None) -> Any:
    """As FailoverController.application_rule reads the claiming policy and the PodGroup."""
    binding = {
        "metadata": {"namespace": "team"},
        "spec": {"policyRef": {"kind": "PropagationPolicy"}, "schedulingGroup": {"podGroup": "train"}},
    }
    controller = SimpleNamespace(
        _policy=lambda _binding: policy_from_body(body),
        state=SimpleNamespace(pod_groups={("team", "train"): pod_group}),
    )
    return FailoverController.application_rule(controller, binding)  # type: ignore[arg-type]


def pod_group_timeout(pod_group: dict[str, Any]) -> Any:
    return application_rule(policy(), pod_group)


def gang(pod_group: dict[str, Any]) -> Any:
    binding = desired_binding(
        JOB,
        policy_from_body(policy()),
        REGISTRY.get("kubeflow.org/v1", "PyTorchJob"),  # type: ignore[arg-type]
        pod_group,
    )
    return scheduler_workload(binding).to_dict()


def quota(body: dict[str, Any]) -> tuple[Any, ...]:
    q = Quota.from_body(body)
    return (q.hard, q.static)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``path`` (``a.b[].c``: the first list item) set to ``value``."""
    out = copy.deepcopy(doc)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        key, many = part.removesuffix("[]"), part.endswith("[]")
        node = node.setdefault(key, [{}])[0] if many else node.setdefault(key, {})
    node[parts[-1]] = value
    return out


Probe = tuple[dict[str, Any], Any, Callable[[dict[str, Any]], Any]]
"""(base object, a value that must make a difference at the field's path, what acts on it)."""

POLICY = policy()
CLUSTER_POLICY = policy("ClusterPropagationPolicy")
SELECTOR = "spec.resourceSelectors[]"
AFFINITY_TERM = {"affinityName": "first", "clusterNames": ["a"]}
AFFINITIES = policy(placement={"clusterAffinities": [AFFINITY_TERM, {"affinityName": "second"}]})
SPREAD = policy(
    placement={"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 2, "minGroups": 1}]}
)
DIVIDED = policy(placement={"replicaScheduling": {"replicaSchedulingType": "Divided"}})
WEIGHTED = policy(
    placement={
        "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted"}
    }
)
QUOTA: dict[str, Any] = {
    "apiVersion": "flotilla.dev/v1alpha1",
    "kind": "FederatedResourceQuota",
    "metadata": {"name": "q", "namespace": "team"},
    "spec": {"overall": {"nvidia.com/gpu": "8"}, "staticAssignments": [{"clusterName": "a", "hard": {}}]},
}
APPLICATION = policy(failover={"application": {"decisionConditions": {"tolerationSeconds": 60}}})
PODGROUP: dict[str, Any] = {"metadata": {"name": "train", "namespace": "team"}, "spec": {"minMember": 4}}

PROBES: dict[str, Probe] = {
    f"{SELECTOR}.apiVersion": (POLICY, "batch/v1", match),
    f"{SELECTOR}.kind": (POLICY, "Job", match),
    f"{SELECTOR}.namespace": (CLUSTER_POLICY, "elsewhere", match),
    f"{SELECTOR}.name": (POLICY, "web", match),
    f"{SELECTOR}.labelSelector": (POLICY, {"matchLabels": {"app": "web"}}, match),
    "spec.placement.clusterAffinity.clusterNames": (POLICY, ["c"], scheduler_input),
    "spec.placement.clusterAffinity.exclude": (POLICY, ["b"], scheduler_input),
    "spec.placement.clusterAffinity.labelSelector": (
        POLICY,
        {"matchLabels": {"gpu": "h100"}},
        scheduler_input,
    ),
    "spec.placement.clusterAffinity.fieldSelector": (
        POLICY,
        {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]},
        scheduler_input,
    ),
    "spec.placement.clusterAffinities[].affinityName": (AFFINITIES, "renamed", scheduler_input),
    "spec.placement.clusterAffinities[].clusterNames": (AFFINITIES, ["b"], scheduler_input),
    "spec.placement.clusterAffinities[].exclude": (AFFINITIES, ["a"], scheduler_input),
    "spec.placement.clusterAffinities[].labelSelector": (
        AFFINITIES,
        {"matchLabels": {"gpu": "h100"}},
        scheduler_input,
    ),
    "spec.placement.clusterAffinities[].fieldSelector": (
        AFFINITIES,
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
        scheduler_input,
    ),
    "spec.placement.clusterTolerations": (
        POLICY,
        [{"key": "cluster.flotilla.dev/not-ready", "operator": "Exists", "effect": "NoExecute"}],
        scheduler_input,
    ),
    "spec.placement.spreadConstraints[].spreadByField": (SPREAD, "region", scheduler_input),
    "spec.placement.spreadConstraints[].spreadByLabel": (
        policy(placement={"spreadConstraints": [{"spreadByLabel": "rack", "maxGroups": 2}]}),
        "row",
        scheduler_input,
    ),
    "spec.placement.spreadConstraints[].maxGroups": (SPREAD, 3, scheduler_input),
    "spec.placement.spreadConstraints[].minGroups": (SPREAD, 2, scheduler_input),
    "spec.placement.replicaScheduling.replicaSchedulingType": (DIVIDED, "Duplicated", scheduler_input),
    "spec.placement.replicaScheduling.replicaDivisionPreference": (DIVIDED, "Aggregated", scheduler_input),
    "spec.placement.replicaScheduling.weightPreference.staticWeightList": (
        WEIGHTED,
        [{"targetCluster": {"clusterNames": ["a"]}, "weight": 2}],
        scheduler_input,
    ),
    "spec.placement.replicaScheduling.weightPreference.dynamicWeight": (
        WEIGHTED,
        "AvailableReplicas",
        scheduler_input,
    ),
    "spec.priority": (POLICY, 5, beats_a_rival),
    "spec.preemption": (policy(priority=5), "Always", takes_over),
    "spec.failover.cluster.purgeMode": (POLICY, "Directly", cluster_purge_mode),
    "spec.failover.application.decisionConditions.tolerationSeconds": (APPLICATION, 30, application_rule),
    "spec.failover.application.purgeMode": (APPLICATION, "Directly", application_rule),
    "spec.failover.application.gracePeriodSeconds": (APPLICATION, 120, application_rule),
    "spec.scheduleTimeoutSeconds": (PODGROUP, 60, pod_group_timeout),
    "spec.overall": (QUOTA, {"nvidia.com/gpu": "16"}, quota),
    "spec.staticAssignments[].clusterName": (QUOTA, "b", quota),
    "spec.staticAssignments[].hard": (QUOTA, {"nvidia.com/gpu": "4"}, quota),
    "spec.minMember": (PODGROUP, 2, gang),
    "spec.minTaskMember": (PODGROUP, {"Master": 1, "Worker": 3}, gang),
    "spec.maxClusters": (PODGROUP, 2, gang),
    "spec.minResources": (PODGROUP, {"cpu": "3", "nvidia.com/gpu": 2}, gang),
}

TABLES = {
    "PropagationPolicy": compat.KARMADA_POLICY_FIELDS,
    "FederatedResourceQuota": compat.KARMADA_QUOTA_FIELDS,
    "PodGroup": compat.PODGROUP_FIELDS,
}
SUPPORTED = sorted({(kind, f.path) for kind, table in TABLES.items() for f in table if f.support is compat.S})
IGNORED = sorted({(kind, f.path) for kind, table in TABLES.items() for f in table if f.support is compat.IG})


@pytest.mark.parametrize(("kind", "path"), SUPPORTED, ids=[f"{k}:{p}" for k, p in SUPPORTED])
def test_every_supported_field_is_read_by_the_code_that_acts_on_it(kind: str, path: str) -> None:
    assert path in PROBES, f"{kind} {path} is marked supported but no probe shows the code reading it"
    base, value, acts = PROBES[path]
    assert acts(base) != acts(_set(base, path, value)), f"{kind} {path}: setting it changes nothing"


@pytest.mark.parametrize(("kind", "path"), IGNORED, ids=[f"{k}:{p}" for k, p in IGNORED])
def test_every_ignored_field_gets_the_warning(kind: str, path: str) -> None:
    table = TABLES[kind]
    body = _set({"metadata": {"name": "x"}}, path, {"set-by": "a user"})
    assert path in compat.ignored_fields_in(body, table)
    message = compat.ignored_field_message(path, table)
    assert message.startswith(f"{path} is accepted for compatibility but ignored by Flotilla.")
    inert = next(f.inert for f in table if f.path == path)
    for value in inert:  # the upstream defaults: no warning
        assert path not in compat.ignored_fields_in(_set({"metadata": {}}, path, value), table)


def test_the_operator_warns_for_policies_and_pod_groups() -> None:
    import inspect

    from flotilla import operator

    for handler, table in ((operator.on_policy, ""), (operator.on_pod_group, "PODGROUP_FIELDS")):
        source = inspect.getsource(handler)
        assert "ignored_fields_in(dict(body)" in source and '"IgnoredField"' in source, handler.__name__
        assert table in source


def test_no_probe_is_left_over() -> None:
    supported = {p for _, p in SUPPORTED}
    assert set(PROBES) <= supported, sorted(set(PROBES) - supported)
