"""MemberInventory: incremental node/pod events mirrored into the SchedulerCache."""

from __future__ import annotations

import threading
from typing import Any

from inventory_objects import node, pod

from flotilla.inventory.store import Change, ClusterMeta, MemberInventory
from flotilla.scheduler import SchedulerCache, Taint


def make(meta: ClusterMeta | None = None) -> tuple[MemberInventory, SchedulerCache]:
    cache = SchedulerCache()
    inv = MemberInventory("m", cache, threading.RLock(), meta)
    inv.publish()
    return inv, cache


def free_gpus(cache: SchedulerCache) -> dict[str, int]:
    return {n.name: n.whole_free for n in cache.snapshot().clusters["m"].nodes.values()}


def gpu_pod(uid: str, node_name: str, gpus: int, **kw: Any) -> dict[str, Any]:
    return pod(
        uid,
        node_name,
        containers=[{"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}],
        **kw,
    )


def test_publish_puts_a_not_ready_member_with_metadata_into_the_cache() -> None:
    _, cache = make(ClusterMeta({"region": "eu"}, (Taint("k", "v", "NoSchedule"),), "aws", "eu", "eu-1a"))
    info = cache.snapshot().clusters["m"]
    assert not info.ready and info.api_enablements is None
    assert (info.labels, info.taints, info.provider, info.zone) == (
        {"region": "eu"},
        (Taint("k", "v", "NoSchedule"),),
        "aws",
        "eu-1a",
    )


def test_set_cluster_reports_changes_and_freed_capacity() -> None:
    inv, cache = make()
    assert inv.set_cluster(ready=True) == Change.CHANGED | Change.FREED
    assert inv.set_cluster(ready=True) == Change.NONE
    assert inv.set_cluster(ready=False) == Change.CHANGED
    assert not cache.snapshot().clusters["m"].ready
    assert inv.set_cluster(api_enablements=frozenset({"v1/Pod"})) & Change.FREED
    assert inv.set_cluster(api_enablements=frozenset()) == Change.CHANGED  # APIs only went away
    assert cache.snapshot().clusters["m"].api_enablements == frozenset()


def test_nodes_list_and_events() -> None:
    inv, cache = make()
    assert inv.replace_nodes([node("n1"), node("n2")]) == Change.CHANGED | Change.FREED
    assert inv.replace_nodes([node("n1"), node("n2")]) == Change.NONE  # same list: no republish
    assert free_gpus(cache) == {"n1": 8, "n2": 8}
    # A status-only update (heartbeat) changes nothing the scheduler sees.
    assert inv.apply_node("MODIFIED", node("n1", nodeInfo={"kubeletVersion": "v1.34"})) == Change.NONE
    assert inv.apply_node("MODIFIED", node("n1", ready="False")) == Change.CHANGED | Change.FREED
    assert not cache.snapshot().clusters["m"].nodes["n1"].ready
    assert inv.apply_node("DELETED", node("n2")) == Change.CHANGED
    assert inv.apply_node("DELETED", node("n2")) == Change.NONE
    assert set(free_gpus(cache)) == {"n1"}
    assert inv.replace_nodes([node("n3")]) & Change.CHANGED
    assert set(free_gpus(cache)) == {"n3"}
    _, nodes = inv.summaries()
    assert nodes == {"totalNum": 1, "readyNum": 1, "cordonedNum": 0}


def test_pod_events_charge_and_release_nodes() -> None:
    inv, cache = make()
    inv.replace_nodes([node("n1"), node("n2")])
    assert inv.apply_pod("ADDED", gpu_pod("p1", "n1", 8)) == Change.CHANGED
    assert inv.apply_pod("ADDED", gpu_pod("p2", "n2", 3)) == Change.CHANGED
    assert free_gpus(cache) == {"n1": 0, "n2": 5}
    assert inv.apply_pod("MODIFIED", gpu_pod("p1", "n1", 8)) == Change.NONE  # status churn
    summary, _ = inv.summaries()
    assert summary["free"]["nvidia.com/gpu"] == "5"
    assert summary["allocated"] == {"nvidia.com/gpu": "11", "pods": "2"}
    # Succeeded: released although the object still exists.
    assert (
        inv.apply_pod("MODIFIED", gpu_pod("p1", "n1", 8, phase="Succeeded")) == Change.CHANGED | Change.FREED
    )
    assert inv.apply_pod("DELETED", gpu_pod("p2", "n2", 3)) == Change.CHANGED | Change.FREED
    assert inv.apply_pod("DELETED", gpu_pod("p2", "n2", 3)) == Change.NONE
    assert free_gpus(cache) == {"n1": 8, "n2": 8}
    assert inv.summaries()[0]["allocated"] == {}
    assert inv.counts() == (2, 0)


def test_pods_may_arrive_before_their_node() -> None:
    inv, cache = make()
    inv.apply_pod("ADDED", gpu_pod("p1", "late", 2))
    assert free_gpus(cache) == {}
    inv.apply_node("ADDED", node("late"))
    assert free_gpus(cache) == {"late": 6}


def test_deleted_then_re_added_node_keeps_its_pods() -> None:
    inv, cache = make()
    inv.replace_nodes([node("n1")])
    inv.apply_pod("ADDED", gpu_pod("p1", "n1", 2))
    inv.apply_node("DELETED", node("n1"))
    inv.apply_node("ADDED", node("n1"))
    assert free_gpus(cache) == {"n1": 6}


def test_relist_reconciles_pods_and_keeps_reservations() -> None:
    inv, cache = make()
    inv.replace_nodes([node("n1")])
    inv.apply_pod("ADDED", gpu_pod("gone", "n1", 4))
    inv.apply_pod("ADDED", gpu_pod("stays", "n1", 1))
    change = inv.replace_pods([gpu_pod("stays", "n1", 1), gpu_pod("new", "n1", 2)])
    assert change == Change.CHANGED | Change.FREED
    assert free_gpus(cache) == {"n1": 5}
    assert inv.counts() == (1, 2)
    assert inv.replace_pods([gpu_pod("stays", "n1", 1), gpu_pod("new", "n1", 2)]) == Change.NONE


def test_remove_and_republish() -> None:
    inv, cache = make()
    inv.replace_nodes([node("n1")])
    inv.apply_pod("ADDED", gpu_pod("p1", "n1", 2))
    inv.remove()
    assert "m" not in cache.snapshot().clusters
    inv.publish()  # e.g. a new connection taking over: pods are re-added
    assert free_gpus(cache) == {"n1": 6}


def test_node_summary_counts_cordoned_nodes_ready_or_not() -> None:
    inv, cache = make()
    inv.replace_nodes([node("n1"), node("n2", unschedulable=True), node("n3", ready="False")])
    summary, nodes = inv.summaries()
    assert nodes == {"totalNum": 3, "readyNum": 2, "cordonedNum": 1}
    assert summary["allocatable"]["nvidia.com/gpu"] == "8"  # only n1 is schedulable
    # Cordoning a NotReady node changes nothing the scheduler sees, but the summary changes.
    assert inv.apply_node("MODIFIED", node("n3", ready="False", unschedulable=True)) == Change.CHANGED
    assert inv.apply_node("MODIFIED", node("n3", ready="False", unschedulable=True)) == Change.NONE
    assert inv.summaries()[1] == {"totalNum": 3, "readyNum": 2, "cordonedNum": 2}
    assert inv.apply_node("MODIFIED", node("n1", unschedulable=True)) == Change.CHANGED | Change.FREED
    summary, nodes = inv.summaries()
    assert nodes == {"totalNum": 3, "readyNum": 2, "cordonedNum": 3}
    assert summary["gpuModels"] == [] and summary["allocatable"] == {}
    assert not any(n.ready for n in cache.snapshot().clusters["m"].nodes.values())
    # A full re-list that only uncordons the NotReady node.
    entries = [node("n1", unschedulable=True), node("n2", unschedulable=True), node("n3", ready="False")]
    assert inv.replace_nodes(entries) == Change.CHANGED
    assert inv.replace_nodes(entries) == Change.NONE
    assert inv.summaries()[1] == {"totalNum": 3, "readyNum": 2, "cordonedNum": 2}
    assert inv.apply_node("DELETED", node("n2")) == Change.CHANGED
    assert inv.summaries()[1] == {"totalNum": 2, "readyNum": 1, "cordonedNum": 1}
