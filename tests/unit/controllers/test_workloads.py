from __future__ import annotations

from typing import Any

from flotilla.controllers.matching import policy_from_body
from flotilla.controllers.workloads import binding_name, desired_binding, scheduler_workload, scheduling_hash
from flotilla.interpreter import InterpreterRegistry
from flotilla.scheduler import Scheduler, SchedulerCache

REGISTRY = InterpreterRegistry()


def pytorchjob(workers: int = 3, gpus: int = 8) -> dict[str, Any]:
    def spec(n: int) -> dict[str, Any]:
        return {
            "replicas": n,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "x",
                            "resources": {"requests": {"cpu": "4", "nvidia.com/gpu": str(gpus)}},
                        }
                    ],
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                }
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train", "namespace": "ml", "uid": "u-1", "generation": 1},
        "spec": {"pytorchReplicaSpecs": {"Master": spec(1), "Worker": spec(workers)}},
    }


POLICY = policy_from_body(
    {
        "kind": "PropagationPolicy",
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"priority": 7, "placement": {"clusterAffinity": {"clusterNames": ["a", "b"]}}},
    }
)


def test_desired_binding_for_a_multi_role_job() -> None:
    template = pytorchjob()
    body = desired_binding(template, POLICY, REGISTRY.get("kubeflow.org/v1", "PyTorchJob"))  # type: ignore[arg-type]
    assert body["metadata"]["name"] == "train-pytorchjob"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    spec = body["spec"]
    assert {c["name"]: c["replicas"] for c in spec["components"]} == {"master": 1, "worker": 3} or {
        c["name"]: c["replicas"] for c in spec["components"]
    } == {"Master": 1, "Worker": 3}
    assert spec["schedulingGroup"] == {"minMember": 4}
    assert "replicas" not in spec  # not divisible: goes whole to one cluster
    assert spec["policyRef"] == {"kind": "PropagationPolicy", "name": "p", "namespace": "ml"}
    assert spec["priority"] == 7
    req = spec["components"][0]["replicaRequirements"]
    assert req["resourceRequest"]["nvidia.com/gpu"] == "8"
    assert req["nodeClaim"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}


def test_scheduling_hash_ignores_template_identity_but_not_replicas() -> None:
    interp = REGISTRY.get("kubeflow.org/v1", "PyTorchJob")
    assert interp is not None
    a = desired_binding(pytorchjob(), POLICY, interp)
    b = desired_binding(
        {**pytorchjob(), "metadata": {**pytorchjob()["metadata"], "uid": "u-2"}}, POLICY, interp
    )
    c = desired_binding(pytorchjob(workers=4), POLICY, interp)
    assert scheduling_hash(a["spec"]) == scheduling_hash(b["spec"])
    assert scheduling_hash(a["spec"]) != scheduling_hash(c["spec"])


def test_binding_round_trips_into_a_schedulable_gang() -> None:
    from flotilla.scheduler import ClusterInfo, NodeInfo

    interp = REGISTRY.get("kubeflow.org/v1", "PyTorchJob")
    assert interp is not None
    body = desired_binding(pytorchjob(), POLICY, interp)
    workload = scheduler_workload(body)
    assert workload.key == "ml/train-pytorchjob"
    assert workload.gvk == "kubeflow.org/v1/PyTorchJob"
    assert workload.gang is not None and workload.gang.min_member == 4
    assert workload.total_replicas == 4
    cache = SchedulerCache()
    gpu_labels = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.memory": "81559"}
    for cluster, nodes, per_node in (("a", 4, 8), ("b", 16, 4)):
        cache.update_cluster(
            ClusterInfo(name=cluster, api_enablements=frozenset({"kubeflow.org/v1/PyTorchJob"}))
        )
        for i in range(nodes):
            cache.upsert_node(
                cluster,
                NodeInfo(
                    name=f"{cluster}-{i}",
                    labels=gpu_labels,
                    allocatable={"cpu": 96000, "memory": 2**40, "pods": 110, "nvidia.com/gpu": per_node},
                ),
            )
    outcome = Scheduler().schedule(cache.snapshot(), workload)
    assert outcome.ok, outcome
    assert [t.name for t in outcome.targets] == ["a"]


def test_binding_name_is_bounded() -> None:
    assert binding_name("Deployment", "web") == "web-deployment"
    long = binding_name("Deployment", "x" * 300)
    assert len(long) <= 253


def test_pod_group_roles_match_case_insensitively_and_unknown_roles_are_errors() -> None:
    import pytest

    interp = REGISTRY.get("kubeflow.org/v1", "PyTorchJob")
    assert interp is not None
    pg = {"metadata": {"name": "g"}, "spec": {"minMember": 4, "minTaskMember": {"Master": 1, "Worker": 3}}}
    body = desired_binding(pytorchjob(), POLICY, interp, pg)
    names = {c["name"] for c in body["spec"]["components"]}
    assert set(body["spec"]["schedulingGroup"]["minTaskMember"]) <= names
    assert body["spec"]["schedulingGroup"]["podGroup"] == "g"
    bad = {"metadata": {"name": "g"}, "spec": {"minMember": 4, "minTaskMember": {"Launcher": 1}}}
    with pytest.raises(ValueError, match=r"minTaskMember names roles \['Launcher'\]"):
        desired_binding(pytorchjob(), POLICY, interp, bad)


def test_pod_group_min_resources_reach_the_scheduler_in_canonical_units() -> None:
    import pytest

    from flotilla.api import ResourceBinding

    interp = REGISTRY.get("kubeflow.org/v1", "PyTorchJob")
    assert interp is not None
    pg = {
        "metadata": {"name": "g"},
        "spec": {"minMember": 4, "minResources": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": 32}},
    }
    body = desired_binding(pytorchjob(), POLICY, interp, pg)
    group = body["spec"]["schedulingGroup"]
    assert group["minResources"] == {"cpu": "1500m", "memory": str(2 << 30), "nvidia.com/gpu": "32"}
    ResourceBinding.parse(body)  # the binding's schema takes it
    gang = scheduler_workload(body).gang
    assert gang is not None
    assert gang.min_resources == {"cpu": 1500, "memory": 2 << 30, "nvidia.com/gpu": 32}
    # A different minResources is a different scheduling input: the workload is scheduled again.
    other = desired_binding(pytorchjob(), POLICY, interp, {**pg, "spec": {"minMember": 4}})
    assert scheduling_hash(other["spec"]) != scheduling_hash(body["spec"])
    bad = {"metadata": {"name": "g"}, "spec": {"minMember": 4, "minResources": {"cpu": "lots"}}}
    with pytest.raises(ValueError, match=r"PodGroup g: spec\.minResources\.cpu: "):
        desired_binding(pytorchjob(), POLICY, interp, bad)


def test_divide_exactly_scales_pod_counts_to_the_divisible_replicas() -> None:
    from flotilla.controllers.common import divide_exactly

    assert divide_exactly(9, {"a": 3, "b": 6}) == {"a": 3, "b": 6}
    assert divide_exactly(4, {"b": 5}) == {"b": 4}  # RayCluster: head + 4 workers -> 4 worker replicas
    assert divide_exactly(4, {"a": 3, "b": 2}) == {"a": 2, "b": 2}
    assert sum(divide_exactly(7, {"a": 1, "b": 1, "c": 1}).values()) == 7
    assert divide_exactly(3, {"a": 0}) == {"a": 0}
