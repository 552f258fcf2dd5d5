"""Table-driven tests, one table per plugin."""

from __future__ import annotations

from typing import Any

import pytest
from sched_fixtures import GiB, cluster, node, snapshot, workload

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    ClusterAffinity,
    Code,
    Component,
    CycleState,
    Framework,
    NodeInfo,
    Placement,
    Scheduler,
    ScheduleResult,
    Taint,
    Toleration,
    Workload,
)
from flotilla.scheduler.plugins import (
    api_enablement,
    cluster_affinity,
    cluster_eviction,
    cluster_health,
    cluster_locality,
    fragmentation,
    gpu_allocation,
    node_affinity,
    node_resources_fit,
    node_taints,
    spread_constraint,
    taint_toleration,
)
from flotilla.scheduler.snapshot import ClusterInfo


def wl(placement: dict[str, Any] | None = None, **kwargs: Any) -> Workload:
    return Workload(
        "ns/w", (Component("main", 1, {"cpu": 1000}),), Placement.from_dict(placement or {}), **kwargs
    )


C1 = ClusterInfo("c1", labels={"env": "prod", "tier": "gpu"}, provider="aws", region="us-east-1", zone="a")


@pytest.mark.parametrize(
    ("affinity", "ok"),
    [
        ({}, True),
        ({"clusterNames": ["c1", "c2"]}, True),
        ({"clusterNames": ["c2"]}, False),
        ({"exclude": ["c1"]}, False),
        ({"labelSelector": {"matchLabels": {"env": "prod"}}}, True),
        ({"labelSelector": {"matchLabels": {"env": "dev"}}}, False),
        (
            {"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu"]}]}},
            True,
        ),
        (
            {
                "labelSelector": {
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]
                }
            },
            False,
        ),
        ({"labelSelector": {"matchExpressions": [{"key": "gone", "operator": "DoesNotExist"}]}}, True),
        (
            {
                "fieldSelector": {
                    "matchExpressions": [{"key": "region", "operator": "In", "values": ["us-east-1"]}]
                }
            },
            True,
        ),
        (
            {
                "fieldSelector": {
                    "matchExpressions": [{"key": "provider", "operator": "NotIn", "values": ["aws"]}]
                }
            },
            False,
        ),
        (
            {"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
            False,
        ),
    ],
)
def test_cluster_affinity(affinity: dict[str, Any], ok: bool) -> None:
    plugin = cluster_affinity.new()
    state = CycleState({cluster_affinity.STATE_KEY: ClusterAffinity.from_dict(affinity)})
    assert plugin.filter(state, wl(), C1).is_success is ok
    assert (
        plugin.pre_filter(CycleState({cluster_affinity.STATE_KEY: None}), wl(), snapshot(C1)).code
        is Code.SKIP
    )


NS = Taint("gpu", "busy", "NoSchedule")
NE = Taint("down", "", "NoExecute")


@pytest.mark.parametrize(
    ("taints", "tolerations", "current", "ok"),
    [
        ((), (), {}, True),
        ((NS,), (), {}, False),
        ((NS,), ({"key": "gpu", "operator": "Equal", "value": "busy", "effect": "NoSchedule"},), {}, True),
        ((NS,), ({"key": "gpu", "operator": "Exists"},), {}, True),
        ((NS,), ({"key": "gpu", "operator": "Equal", "value": "idle"},), {}, False),
        ((NS,), ({"operator": "Exists"},), {}, True),
        ((NS,), (), {"c1": 2}, True),  # NoSchedule keeps a workload that already runs there
        ((NE,), (), {"c1": 2}, False),  # NoExecute does not
        ((NE,), ({"key": "down", "operator": "Exists", "effect": "NoExecute"},), {}, True),
        ((Taint("soft", "", "PreferNoSchedule"),), (), {}, True),
    ],
)
def test_taint_toleration(
    taints: tuple[Taint, ...], tolerations: tuple[dict[str, str], ...], current: dict[str, int], ok: bool
) -> None:
    c = ClusterInfo("c1", taints=taints)
    status = taint_toleration.new().filter(
        CycleState(), wl({"clusterTolerations": list(tolerations)}, current=current), c
    )
    assert status.is_success is ok
    if not ok:
        assert "untolerated taint {" in status.reasons[0]


@pytest.mark.parametrize(
    ("apis", "gvk", "code"),
    [
        (None, "kubeflow.org/v1/PyTorchJob", Code.SUCCESS),
        (frozenset({"apps/v1/Deployment"}), "apps/v1/Deployment", Code.SUCCESS),
        (
            frozenset({"apps/v1/Deployment"}),
            "kubeflow.org/v1/PyTorchJob",
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
        ),
        (frozenset(), "batch/v1/Job", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ],
)
def test_api_enablement(apis: frozenset[str] | None, gvk: str, code: Code) -> None:
    assert (
        api_enablement.new().filter(CycleState(), wl(gvk=gvk), ClusterInfo("c", api_enablements=apis)).code
        is code
    )
    assert api_enablement.new().pre_filter(CycleState(), wl(), snapshot()).code is Code.SKIP
    # The filter runs only when some cluster would reject the gvk.
    pre = api_enablement.new().pre_filter(
        CycleState(), wl(gvk=gvk), snapshot(ClusterInfo("c", api_enablements=apis))
    )
    assert (pre.code is Code.SKIP) is (code is Code.SUCCESS)


@pytest.mark.parametrize(
    ("ready", "evicted", "health_ok", "eviction_ok"),
    [(True, (), True, True), (False, (), False, True), (True, ("c",), True, False)],
)
def test_cluster_health_and_eviction(
    ready: bool, evicted: tuple[str, ...], health_ok: bool, eviction_ok: bool
) -> None:
    c = ClusterInfo("c", ready=ready)
    w = wl(evicted_from=frozenset(evicted))
    assert cluster_health.new().filter(CycleState(), w, c).is_success is health_ok
    assert (cluster_health.new().pre_filter(CycleState(), w, snapshot(c)).code is Code.SKIP) is ready
    assert cluster_eviction.new().filter(CycleState(), w, c).is_success is eviction_ok


@pytest.mark.parametrize(("region", "ok"), [("eu", True), ("", False)])
def test_spread_constraint_filter(region: str, ok: bool) -> None:
    w = wl({"spreadConstraints": [{"spreadByField": "region", "maxGroups": 2}]})
    assert spread_constraint.new().filter(CycleState(), w, ClusterInfo("c", region=region)).is_success is ok


@pytest.mark.parametrize(("current", "expected"), [({"c": 3}, 100.0), ({"other": 1}, 0.0), ({"c": 0}, 0.0)])
def test_cluster_locality(current: dict[str, int], expected: float) -> None:
    assert cluster_locality.new().score(CycleState(), wl(current=current), ClusterInfo("c")) == expected


def shape(**kwargs: Any) -> Any:
    requests = kwargs.pop("requests", {"cpu": 1000})
    return Component("main", 1, requests, **kwargs).shape


@pytest.mark.parametrize(
    ("selector", "affinity", "reason"),
    [
        ({}, (), None),
        ({"nvidia.com/gpu.product": "A100"}, (), None),
        ({"nvidia.com/gpu.product": "H100"}, (), node_affinity.GPU_REASON),
        ({"pool": "x"}, (), node_affinity.REASON),
        (
            {},
            (
                {
                    "matchExpressions": [
                        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["A100", "H100"]}
                    ]
                },
            ),
            None,
        ),
        (
            {},
            (
                {
                    "matchExpressions": [
                        {"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": ["A100"]}
                    ]
                },
            ),
            node_affinity.GPU_REASON,
        ),
        (
            {},
            (
                {
                    "matchExpressions": [
                        {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["40000"]}
                    ]
                },
            ),
            None,
        ),
        (
            {},
            (
                {
                    "matchExpressions": [
                        {"key": "nvidia.com/gpu.memory", "operator": "Lt", "values": ["40000"]}
                    ]
                },
            ),
            node_affinity.GPU_REASON,
        ),
        ({}, ({"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "Exists"}]},), None),
        (
            {},
            (
                {"matchExpressions": [{"key": "absent", "operator": "Exists"}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
            ),
            None,
        ),
        (
            {},
            ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]},),
            node_affinity.REASON,
        ),
    ],
)
def test_node_affinity(
    selector: dict[str, str], affinity: tuple[dict[str, Any], ...], reason: str | None
) -> None:
    n = node("n1", labels={"zone": "a"})
    assert node_affinity.new().node_filter(shape(node_selector=selector, node_affinity=affinity), n) == reason


@pytest.mark.parametrize(
    ("taints", "tolerations", "ok"),
    [
        ((), (), True),
        ((Taint("nvidia.com/gpu", "", "NoSchedule"),), (), False),
        ((Taint("nvidia.com/gpu", "", "NoSchedule"),), (Toleration("nvidia.com/gpu", "Exists"),), True),
        ((Taint("maint", "", "NoExecute"),), (Toleration("maint", "Exists", effect="NoSchedule"),), False),
        ((Taint("soft", "", "PreferNoSchedule"),), (), True),
    ],
)
def test_node_taints(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...], ok: bool) -> None:
    result = node_taints.new().node_filter(shape(tolerations=tolerations), node("n", taints=taints))
    assert (result is None) is ok


@pytest.mark.parametrize(
    ("requests", "gpu_free", "capacity", "short"),
    [
        ({"cpu": 16_000}, None, 4, []),
        ({"cpu": 100_000}, None, 0, ["cpu"]),
        ({"memory": 200 * GiB}, None, 2, []),
        ({"example.com/fpga": 1}, None, 0, ["example.com/fpga"]),
        ({"cpu": 1000, GPU_RESOURCE: 2}, None, 4, []),
        ({"cpu": 1000, GPU_RESOURCE: 8}, None, 1, []),
        ({"cpu": 1000, GPU_RESOURCE: 2}, (1000, 500, 1000, 0, 0, 0, 0, 0), 1, []),
        ({"cpu": 1000, GPU_RESOURCE: 3}, (1000, 500, 1000, 0, 0, 0, 0, 0), 0, [GPU_RESOURCE]),
        ({"cpu": 1000, GPU_MILLI_RESOURCE: 500}, (1000, 500, 300, 0, 0, 0, 0, 0), 3, []),
        ({"cpu": 1000, GPU_MILLI_RESOURCE: 600}, (500, 500, 500, 500, 0, 0, 0, 0), 0, [GPU_MILLI_RESOURCE]),
    ],
)
def test_node_resources_fit(
    requests: dict[str, int], gpu_free: tuple[int, ...] | None, capacity: int, short: list[str]
) -> None:
    n = node("n", gpu_free=gpu_free)
    s = shape(requests=requests)
    plugin = node_resources_fit.new()
    assert plugin.node_capacity(s, n.free, n.devices) == capacity
    assert plugin.node_insufficient(s, n.free, n.devices) == short


def test_node_resources_fit_counts_pods_slots() -> None:
    n = node("n", extra={"pods": 2})
    assert node_resources_fit.new().node_capacity(shape(requests={"cpu": 1}), n.free, n.devices) == 2


@pytest.mark.parametrize(
    ("strategy", "winner"),
    [
        (gpu_allocation.MOST_ALLOCATED, "busy"),
        (gpu_allocation.LEAST_ALLOCATED, "idle"),
        (gpu_allocation.BALANCED, "busy"),
    ],
)
def test_gpu_allocation_strategies(strategy: str, winner: str) -> None:
    plugin = gpu_allocation.new(strategy)
    s = shape(requests={"cpu": 32_000, GPU_RESOURCE: 1})
    busy = node("busy", used_gpus=4)
    idle = node("idle")
    scores = {n.name: plugin.node_score(s, n, n.free, n.devices) for n in (busy, idle)}
    assert max(scores, key=lambda k: scores[k]) == winner


def test_default_profile_breaks_fragmentation_ties_towards_balanced_nodes() -> None:
    # Whole-GPU tasks only: both nodes keep zero fragmentation, and MostAllocated would tie them
    # (1 of 8 GPUs used either way). Balanced avoids the node whose CPU is mostly gone already.
    alloc = {"cpu": 96_000, "memory": 512 * GiB, GPU_RESOURCE: 8}
    cpu_busy = NodeInfo("cpu-busy", alloc, {"cpu": 60_000})
    even = NodeInfo("even", alloc)
    framework = Framework(instances={fragmentation.NAME: fragmentation.new([(1000, 1, 0, 1.0)])})
    outcome = Scheduler(framework).schedule(
        snapshot(cluster("a", [cpu_busy]), cluster("b", [even])),
        workload({"cpu": 4000, GPU_RESOURCE: 1}),
    )
    assert isinstance(outcome, ScheduleResult)
    assert [a.node for a in outcome.assignments] == ["even"]


def test_gpu_allocation_rejects_unknown_strategy() -> None:
    with pytest.raises(ValueError):
        gpu_allocation.new("Random")


def test_fragmentation_prefers_filling_a_shared_gpu() -> None:
    plugin = fragmentation.new([(1000, 0, 500, 1.0), (1000, 1, 0, 1.0)])
    s = shape(requests={"cpu": 1000, GPU_MILLI_RESOURCE: 500})
    half = node("half", gpus=2, gpu_free=(500, 1000))
    fresh = node("fresh", gpus=2)
    assert plugin.node_score(s, half, half.free, half.devices) > plugin.node_score(
        s, fresh, fresh.free, fresh.devices
    )
    assert plugin.pick_device(s, half, half.free, half.devices) == 0
    whole = shape(requests={"cpu": 1000, GPU_RESOURCE: 1})
    assert plugin.pick_device(whole, half, half.free, half.devices) is None


def test_fragmentation_measures_stranded_share() -> None:
    plugin = fragmentation.new([(1000, 1, 0, 1.0)])
    assert plugin.fragmentation(10_000, (1000, 1000)) == 0
    assert plugin.fragmentation(10_000, (300, 1000)) == 300  # 300 milli can never hold a whole-GPU task
    assert plugin.fragmentation(500, (1000, 1000)) == 2000  # too little CPU: every free GPU is stranded
    assert plugin.fragmentation(10_000, ()) == 0


def test_every_plugin_module_has_name_and_factory() -> None:
    modules = [
        api_enablement, cluster_affinity, cluster_eviction, cluster_health, cluster_locality, fragmentation,
        gpu_allocation, node_affinity, node_resources_fit, node_taints, spread_constraint, taint_toleration,
    ]  # fmt: skip
    for module in modules:
        assert module.new().name == module.NAME


def test_cluster_fixture_roundtrip() -> None:
    c = cluster("c", [node("n1"), node("n2", used_gpus=8)], api_enablements=frozenset({"apps/v1/Deployment"}))
    again = ClusterInfo.from_dict(c.to_dict())
    assert again.to_dict() == c.to_dict()
    assert again.nodes["n2"].free[GPU_RESOURCE] == 0
