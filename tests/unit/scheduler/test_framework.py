from __future__ import annotations

import json

import pytest
from sched_fixtures import cluster, node, snapshot, workload

from flotilla.scheduler import (
    GPU_RESOURCE,
    Code,
    Diagnosis,
    Framework,
    Registry,
    Scheduler,
    Status,
    new_in_tree_registry,
)
from flotilla.scheduler.runtime import normalize


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("*", ["A", "B", "C"]),
        ("", ["A", "B", "C"]),
        ("*,-B", ["A", "C"]),
        ("-B,-C", ["A"]),
        ("A,C", ["A", "C"]),
        (["*", "-A"], ["B", "C"]),
    ],
)
def test_registry_filter(spec: str | list[str], expected: list[str]) -> None:
    registry = Registry()
    for name in "ABC":
        registry.register(name, lambda: Status())  # type: ignore[arg-type, return-value]
    assert registry.filter(spec) == expected


def test_registry_rejects_unknown_and_duplicates() -> None:
    registry = new_in_tree_registry()
    with pytest.raises(ValueError, match="unknown plugin"):
        registry.filter("*,-Nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ClusterHealth", registry["ClusterHealth"])
    registry.unregister("ClusterHealth")
    assert "ClusterHealth" not in registry.filter("*")


def test_status_and_diagnosis_message() -> None:
    gpu = Status(
        Code.UNSCHEDULABLE,
        ("cluster(s) had insufficient nvidia.com/gpu on any single node",),
        "NodeResourcesFit",
    )
    taint = Status(
        Code.UNSCHEDULABLE, ("cluster(s) had untolerated taint {a=b:NoSchedule}",), "TaintToleration"
    )
    diag = Diagnosis(3, {"a": gpu, "b": gpu, "c": taint})
    assert diag.message() == (
        "0/3 clusters are available: 2 cluster(s) had insufficient nvidia.com/gpu on any single node, "
        "1 cluster(s) had untolerated taint {a=b:NoSchedule}."
    )
    assert json.loads(json.dumps(diag.to_dict()))["clusters"]["c"]["plugin"] == "TaintToleration"
    assert Status().is_success and not gpu.is_success
    assert gpu.with_plugin("X").plugin == "X"


def test_normalize() -> None:
    scores = {"a": 10.0, "b": 20.0, "c": 15.0}
    normalize(scores)
    assert scores == {"a": 0.0, "b": 100.0, "c": 50.0}
    same = {"a": 3.0, "b": 3.0}
    normalize(same)
    assert same == {"a": 100.0, "b": 100.0}


def test_observer_receives_plugin_timings() -> None:
    calls: list[tuple[str, str, float]] = []
    fw = Framework(observer=lambda point, plugin, seconds: calls.append((point, plugin, seconds)))
    snap = snapshot(
        cluster("c1", [node("n1")], api_enablements=frozenset({"apps/v1/Deployment"})),
        cluster("down", [node("n2")], ready=False),  # so ClusterHealth filters this cycle
    )
    w = workload({"cpu": 1000, GPU_RESOURCE: 1})
    assert Scheduler(fw).schedule(snap, w).ok
    points = {(p, name) for p, name, _ in calls}
    assert ("Filter", "ClusterHealth") in points
    assert ("PreFilter", "ClusterAffinity") in points
    assert all(seconds >= 0 for *_, seconds in calls)


def test_disabling_a_filter_changes_the_decision() -> None:
    snap = snapshot(cluster("down", [node("n1")], ready=False))
    w = workload({"cpu": 1000, GPU_RESOURCE: 1})
    assert not Scheduler().schedule(snap, w).ok
    assert Scheduler(Framework(plugins="*,-ClusterHealth")).schedule(snap, w).ok


def test_weights_change_the_ranking() -> None:
    # "busy" is better for bin-packing; "home" is where the workload already runs.
    snap = snapshot(cluster("busy", [node("b1", used_gpus=6)]), cluster("home", [node("h1")]))
    w = workload({"cpu": 1000, GPU_RESOURCE: 1}, current={"home": 1})
    sticky = Scheduler(Framework(weights={"ClusterLocality": 2.0})).schedule(snap, w)
    assert sticky.ok and sticky.targets[0].name == "home"
    packing = Scheduler(Framework(weights={"ClusterLocality": 0.0})).schedule(snap, w)
    assert packing.ok and packing.targets[0].name == "busy"
