"""End-to-end decisions of the pure scheduler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sched_fixtures import DIVIDED_AGGREGATED, GiB, cluster, node, snapshot, workload

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    Component,
    GangSpec,
    Placement,
    Scheduler,
    ScheduleResult,
    Snapshot,
    Taint,
    Unschedulable,
    Workload,
    replay,
    schedule,
)

GPU8 = {"cpu": 8000, "memory": 64 * GiB, GPU_RESOURCE: 8}


def ok(outcome: ScheduleResult | Unschedulable) -> ScheduleResult:
    assert isinstance(outcome, ScheduleResult), outcome.message
    return outcome


def targets(outcome: ScheduleResult | Unschedulable) -> dict[str, int]:
    return {t.name: t.replicas for t in ok(outcome).targets}


def test_fragmented_cluster_cannot_take_an_8_gpu_pod_that_a_summing_estimator_would_accept() -> None:
    frag = cluster("frag", [node(f"n{i}", gpus=8, used_gpus=7) for i in range(8)])
    # A Karmada-style cluster-sum estimator sees 8 free GPUs and says one replica fits:
    assert sum(n.free[GPU_RESOURCE] for n in frag.nodes.values()) // 8 == 1
    outcome = schedule(snapshot(frag), workload(GPU8))
    assert isinstance(outcome, Unschedulable)
    assert (
        outcome.message
        == "0/1 clusters are available: 1 cluster(s) had insufficient nvidia.com/gpu on any single node."
    )
    assert outcome.explanation.to_dict()["clusters"][0]["nodes"] == {"insufficient nvidia.com/gpu": 8}
    # ... while a cluster with one whole free node takes it.
    whole = cluster("whole", [node("w0")])
    result = ok(schedule(snapshot(frag, whole), workload(GPU8)))
    assert targets(result) == {"whole": 1}
    assert [(a.node, a.gpu_devices) for a in result.assignments] == [("w0", (0, 1, 2, 3, 4, 5, 6, 7))]


def test_pytorchjob_gang_needs_every_role_on_nodes_at_once() -> None:
    job = Workload(
        "ns/train",
        (Component("master", 1, GPU8), Component("worker", 3, GPU8)),
        gang=GangSpec(min_member=4),
        gvk="kubeflow.org/v1/PyTorchJob",
    )
    three = cluster("three", [node(f"t{i}") for i in range(3)] + [node("t3", used_gpus=1)])
    four = cluster("four", [node(f"f{i}") for i in range(4)])
    no_api = cluster(
        "noapi", [node(f"x{i}") for i in range(8)], api_enablements=frozenset({"apps/v1/Deployment"})
    )
    result = ok(schedule(snapshot(three, four, no_api), job))
    assert targets(result) == {"four": 4}
    assert {a.component for a in result.assignments} == {"master", "worker"}
    assert len({a.node for a in result.assignments}) == 4
    failed = schedule(snapshot(three, no_api), job)
    assert isinstance(failed, Unschedulable)
    assert "1 cluster(s) did not have the API resource kubeflow.org/v1/PyTorchJob" in failed.message
    # each role fits alone (3 nodes for 3 workers, or for 1 master) but not all 4 pods together
    assert "1 cluster(s) could not bind all required pods on their nodes at once" in failed.message


def test_gang_min_task_member_places_required_pods_and_extras_that_fit() -> None:
    job = Workload(
        "ns/elastic",
        (Component("master", 1, GPU8), Component("worker", 4, GPU8)),
        gang=GangSpec(min_member=3, min_task_member={"master": 1, "worker": 2}),
    )
    result = ok(schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(3)])), job))
    assert result.targets[0].components == {"master": 1, "worker": 2}


def test_gang_multi_cluster_is_all_or_nothing() -> None:
    job = Workload("ns/g", (Component("w", 4, GPU8),), gang=GangSpec(min_member=4, allow_multi_cluster=True))
    a = cluster("a", [node("a0"), node("a1")])
    b = cluster("b", [node("b0")])
    assert isinstance(schedule(snapshot(a, b), job), Unschedulable)
    c = cluster("c", [node("c0")])
    result = ok(schedule(snapshot(a, b, c), job))
    assert sum(targets(result).values()) == 4
    single = Workload("ns/g", (Component("w", 4, GPU8),), gang=GangSpec(min_member=4))
    assert isinstance(schedule(snapshot(a, b, c), single), Unschedulable)


def test_duplicated_needs_every_replica_in_every_chosen_cluster() -> None:
    w = workload({"cpu": 1000, GPU_RESOURCE: 4}, replicas=2, placement={})
    big = cluster("big", [node("b0")])
    small = cluster("small", [node("s0", gpus=4)])
    result = ok(schedule(snapshot(big, small), w))
    assert targets(result) == {"big": 2}
    assert result.explanation.to_dict()["mode"] == "duplicated"


def test_divided_static_weights_respect_node_capacity() -> None:
    placement: dict[str, Any] = {
        "replicaScheduling": {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": {
                "staticWeightList": [
                    {"targetCluster": {"clusterNames": ["a"]}, "weight": 1},
                    {"targetCluster": {"labelSelector": {"matchLabels": {"big": "yes"}}}, "weight": 3},
                ]
            },
        }
    }
    a = cluster("a", [node("a0"), node("a1")])
    b = cluster("b", [node("b0")], labels={"big": "yes"})
    w = workload({"cpu": 1000, GPU_RESOURCE: 1}, replicas=12, placement=placement)
    # weights 1:3 would give b 9 replicas, but only 8 fit on its node -> the extra goes to a.
    assert targets(schedule(snapshot(a, b), w)) == {"a": 4, "b": 8}


def test_divided_dynamic_weight_follows_node_level_availability() -> None:
    placement = {
        "replicaScheduling": {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": {"dynamicWeight": "AvailableReplicas"},
        }
    }
    a = cluster("a", [node("a0"), node("a1", used_gpus=4)])  # 12 x 1-GPU replicas fit
    b = cluster("b", [node(f"b{i}", used_gpus=7) for i in range(4)])  # 4 fit
    result = ok(schedule(snapshot(a, b), workload({"cpu": 1000, GPU_RESOURCE: 1}, 8, placement)))
    assert targets(result) == {"a": 6, "b": 2}
    assert json.loads(json.dumps(result.to_dict()))["explanation"]["clusters"][0]["available"] == {"main": 12}


def test_aggregated_prefers_one_cluster_and_fails_beyond_capacity() -> None:
    a = cluster("a", [node("a0")])
    b = cluster("b", [node("b0"), node("b1")])
    assert targets(schedule(snapshot(a, b), workload({"cpu": 1000, GPU_RESOURCE: 1}, 12))) == {"b": 12}
    assert targets(schedule(snapshot(a, b), workload({"cpu": 1000, GPU_RESOURCE: 1}, 20))) == {
        "a": 4,
        "b": 16,
    }
    failed = schedule(snapshot(a, b), workload({"cpu": 1000, GPU_RESOURCE: 1}, 30))
    assert isinstance(failed, Unschedulable)
    assert "30 main replica(s) requested but only 24 fit at node level" in failed.message


def test_fractional_gpus_share_devices_exactly() -> None:
    c = cluster("c", [node("n", gpus=2, gpu_free=(1000, 300))])
    w = workload({"cpu": 1000, GPU_MILLI_RESOURCE: 250}, replicas=5)
    result = ok(schedule(snapshot(c), w))
    per_device: dict[int, int] = {}
    for a in result.assignments:
        (dev,) = a.gpu_devices
        per_device[dev] = per_device.get(dev, 0) + a.gpu_milli
    assert per_device == {0: 1000, 1: 250}
    assert isinstance(
        schedule(snapshot(c), workload({"cpu": 1000, GPU_MILLI_RESOURCE: 250}, replicas=6)), Unschedulable
    )


def test_gpu_model_and_memory_constraints() -> None:
    a100 = cluster("a", [node("a0", model="A100", gpu_mem=81920)])
    t4 = cluster("t", [node("t0", model="T4", gpu_mem=15360)])
    w = workload({"cpu": 1000, GPU_RESOURCE: 1}, node_selector={GPU_PRODUCT_LABEL: "T4"})
    assert targets(schedule(snapshot(a100, t4), w)) == {"t": 1}
    big_mem = [
        {"matchExpressions": [{"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["40000"]}]}
    ]
    assert targets(schedule(snapshot(a100, t4), workload({GPU_RESOURCE: 1}, node_affinity=big_mem))) == {
        "a": 1
    }
    h100 = workload({GPU_RESOURCE: 1}, node_selector={GPU_PRODUCT_LABEL: "H100"})
    failed = schedule(snapshot(a100, t4), h100)
    assert isinstance(failed, Unschedulable)
    assert (
        failed.message
        == "0/2 clusters are available: 2 cluster(s) had no node with the requested GPU model/memory."
    )


def test_cluster_affinities_fall_back_in_order() -> None:
    placement = {
        **DIVIDED_AGGREGATED,
        "clusterAffinities": [
            {"affinityName": "on-prem", "clusterNames": ["local"]},
            {"affinityName": "cloud", "labelSelector": {"matchLabels": {"kind": "cloud"}}},
        ],
    }
    local = cluster("local", [node("l0", used_gpus=8)])
    cloud = cluster("cloud", [node("c0")], labels={"kind": "cloud"})
    result = ok(schedule(snapshot(local, cloud), workload({GPU_RESOURCE: 1}, placement=placement)))
    assert targets(result) == {"cloud": 1}
    assert result.explanation.affinity_term == "cloud"
    roomy = cluster("local", [node("l0")])
    assert (
        ok(
            schedule(snapshot(roomy, cloud), workload({GPU_RESOURCE: 1}, placement=placement))
        ).explanation.affinity_term
        == "on-prem"
    )


def test_spread_constraints_select_groups() -> None:
    clusters = [cluster(f"c{i}", [node(f"n{i}", used_gpus=i)], region=f"r{i % 2}") for i in range(4)]
    duplicated = {"spreadConstraints": [{"spreadByField": "region", "maxGroups": 1, "minGroups": 1}]}
    result = ok(schedule(snapshot(*clusters), workload({GPU_RESOURCE: 1}, placement=duplicated)))
    assert {clusters[int(t.name[1])].region for t in result.targets} == {"r1"}  # best-packed node c3 is in r1
    by_cluster = {"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 2, "minGroups": 2}]}
    assert (
        len(ok(schedule(snapshot(*clusters), workload({GPU_RESOURCE: 1}, placement=by_cluster))).targets) == 2
    )
    too_many = {"spreadConstraints": [{"spreadByField": "region", "minGroups": 3}]}
    failed = schedule(snapshot(*clusters), workload({GPU_RESOURCE: 1}, placement=too_many))
    assert isinstance(failed, Unschedulable) and "at least 3 region group(s)" in failed.message


def test_node_taints_and_tolerations() -> None:
    tainted = cluster("c", [node("n", taints=[Taint("nvidia.com/gpu", "", "NoSchedule")])])
    failed = schedule(snapshot(tainted), workload({GPU_RESOURCE: 1}))
    assert (
        isinstance(failed, Unschedulable)
        and "untolerated taint {nvidia.com/gpu:NoSchedule}" in failed.message
    )
    from flotilla.scheduler import Toleration

    tolerant = workload({GPU_RESOURCE: 1}, tolerations=(Toleration("nvidia.com/gpu", "Exists"),))
    assert targets(schedule(snapshot(tainted), tolerant)) == {"c": 1}


def test_zero_replicas_still_choose_clusters() -> None:
    c = cluster("c", [node("n")])
    result = ok(schedule(snapshot(c), workload({GPU_RESOURCE: 1}, replicas=0, placement={})))
    assert targets(result) == {"c": 0}


def test_not_ready_nodes_are_skipped() -> None:
    from dataclasses import replace

    c = cluster("c", [replace(node("n"), ready=False)])
    failed = schedule(snapshot(c), workload({GPU_RESOURCE: 1}))
    assert isinstance(failed, Unschedulable) and "no Ready node" in failed.message


def test_explanation_is_json_and_names_plugins() -> None:
    down = cluster("down", [node("d")], ready=False)
    up = cluster("up", [node("u")])
    result = ok(schedule(snapshot(down, up), workload({GPU_RESOURCE: 1})))
    doc = json.loads(json.dumps(result.to_dict()))
    rows = {row["cluster"]: row for row in doc["explanation"]["clusters"]}
    assert rows["down"]["filter"] == {
        "code": "Unschedulable",
        "reasons": ["cluster(s) were not ready"],
        "plugin": "ClusterHealth",
    }
    assert set(rows["up"]["scores"]) == {"NodeScore"}
    assert rows["up"]["replicas"] == 1 and rows["up"]["selected"]


def test_placement_from_dict_roundtrip() -> None:
    raw = {
        "clusterAffinity": {
            "clusterNames": ["a"],
            "exclude": ["b"],
            "labelSelector": {
                "matchLabels": {"x": "y"},
                "matchExpressions": [{"key": "k", "operator": "Exists", "values": []}],
            },
            "fieldSelector": {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]},
        },
        "clusterTolerations": [{"key": "k", "operator": "Exists", "value": "", "effect": "NoSchedule"}],
        "spreadConstraints": [{"spreadByField": "zone", "maxGroups": 2, "minGroups": 1}],
        "replicaScheduling": {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": {
                "staticWeightList": [{"targetCluster": {"clusterNames": ["a"]}, "weight": 2}]
            },
        },
    }
    placement = Placement.from_dict(raw)
    assert Placement.from_dict(placement.to_dict()) == placement
    assert placement.spread_constraints[0].spread_by_field == "zone"


def test_same_input_same_decision_and_replay(tmp_path: Path) -> None:
    snap = snapshot(
        *(cluster(f"c{i}", [node(f"c{i}n{j}", used_gpus=(i + j) % 8) for j in range(4)]) for i in range(5))
    )
    w = workload({"cpu": 2000, GPU_RESOURCE: 2}, replicas=6)
    first = ok(Scheduler().schedule(snap, w)).to_dict()
    assert ok(Scheduler().schedule(snap, w)).to_dict() == first
    snap.save(tmp_path / "snap.json")
    w.save(tmp_path / "w.json")
    assert Snapshot.load(tmp_path / "snap.json").to_dict() == snap.to_dict()
    assert ok(replay(tmp_path / "snap.json", tmp_path / "w.json")).to_dict() == first
