"""MemberCluster taints as the operator writes them (automatic, cordon) reach placement decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sched_fixtures import cluster, node, snapshot, workload

from flotilla.scheduler import GPU_RESOURCE, ScheduleResult, Taint, Unschedulable, schedule

GPU1 = {"cpu": 1000, GPU_RESOURCE: 1}
DUPLICATED: dict[str, Any] = {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}}
CORDON = {
    "key": "cluster.flotilla.dev/unschedulable",
    "effect": "NoSchedule",
    "timeAdded": "2026-03-01T12:00:00Z",
}
AUTO_NE = {
    "key": "cluster.flotilla.dev/not-ready",
    "effect": "NoExecute",
    "timeAdded": "2026-03-01T12:00:30Z",
}


def names(outcome: ScheduleResult | Unschedulable) -> set[str]:
    assert isinstance(outcome, ScheduleResult), outcome.message
    return {t.name for t in outcome.targets}


def test_taint_time_added_round_trips() -> None:
    taint = Taint.from_dict(AUTO_NE)
    assert taint.time_added == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    assert str(taint) == "cluster.flotilla.dev/not-ready:NoExecute"
    assert Taint.from_dict(taint.to_dict()) == taint
    assert Taint.from_dict({"key": "k", "timeAdded": "garbage"}).time_added is None
    assert "timeAdded" not in Taint("k").to_dict()


def test_a_cordoned_member_takes_no_new_workload_but_keeps_its_own() -> None:
    a = cluster("a", [node("a0")], taints=(Taint.from_dict(CORDON),))
    b = cluster("b", [node("b0")])
    new = schedule(snapshot(a, b), workload(GPU1, placement=DUPLICATED))
    assert names(new) == {"b"}
    rows = {c["cluster"]: c for c in new.explanation.to_dict()["clusters"]}
    assert "untolerated taint {cluster.flotilla.dev/unschedulable:NoSchedule}" in str(rows["a"]["filter"])
    # NoSchedule, as in Karmada: a workload already there is not moved.
    running = schedule(snapshot(a, b), workload(GPU1, placement=DUPLICATED, current={"a": 1, "b": 1}))
    assert names(running) == {"a", "b"}
    # A policy's clusterToleration lets new work in.
    tolerant = {
        **DUPLICATED,
        "clusterTolerations": [{"key": "cluster.flotilla.dev/unschedulable", "operator": "Exists"}],
    }
    assert names(schedule(snapshot(a, b), workload(GPU1, placement=tolerant))) == {"a", "b"}


def test_a_no_execute_taint_filters_even_the_workloads_already_there() -> None:
    a = cluster(
        "a",
        [node("a0")],
        taints=(Taint.from_dict({**AUTO_NE, "effect": "NoSchedule"}), Taint.from_dict(AUTO_NE)),
    )
    b = cluster("b", [node("b0")])
    assert names(schedule(snapshot(a, b), workload(GPU1, placement=DUPLICATED, current={"a": 1}))) == {"b"}
    only_a = {**DUPLICATED, "clusterAffinity": {"clusterNames": ["a"]}}
    failed = schedule(snapshot(a, b), workload(GPU1, placement=only_a))
    assert isinstance(failed, Unschedulable)
    assert "untolerated taint {cluster.flotilla.dev/not-ready:NoSchedule}" in failed.message
