"""Failover decisions: a Divided workload keeps its survivors' replicas; evicted clusters stay out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sched_fixtures import cluster, node, snapshot, workload

from flotilla.scheduler import GPU_RESOURCE, GangSpec, Scheduler, ScheduleResult, Toleration
from flotilla.scheduler.placement import Placement
from flotilla.scheduler.workload import Component, Workload

EQUAL: dict[str, Any] = {
    "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted"}
}


def fleet(gpus: dict[str, int]) -> Any:
    return snapshot(*(cluster(name, [node(f"{name}-0", gpus=n)]) for name, n in gpus.items()))


def placed(result: Any) -> dict[str, int]:
    assert isinstance(result, ScheduleResult), result
    return {t.name: t.replicas for t in result.targets}


def test_divided_failover_keeps_survivors_and_places_only_the_lost_share() -> None:
    snap = fleet({"a": 8, "b": 8, "c": 8})
    # Before: b had 5 and c 1 (e.g. from an earlier scale-up); a (lost) had 2. A fresh division
    # would make it 4/4; failover keeps 5 and 1 and divides the 2 lost replicas.
    w = workload({GPU_RESOURCE: 1}, 8, EQUAL, current={"b": 5, "c": 1})
    w = replace(w, evicted_from=frozenset({"a"}), keep_current=True)
    result = Scheduler().schedule(snap, w)
    out = placed(result)
    assert "a" not in out
    assert out["b"] >= 5 and out["c"] >= 1 and sum(out.values()) == 8
    assert out == {"b": 6, "c": 2}
    assert len(result.assignments) == 2  # only the lost share is reserved anew
    fresh = placed(Scheduler().schedule(snap, replace(w, keep_current=False)))
    assert fresh == {"b": 4, "c": 4}


def test_a_full_survivor_keeps_its_replicas_and_the_rest_goes_elsewhere() -> None:
    # b has no room for one more pod (its own 4 fill it, as the member reports them) but keeps them.
    snap = snapshot(
        cluster("b", [node("b-0", gpus=4, used_gpus=4)]),
        cluster("c", [node("c-0", gpus=8)]),
    )
    w = replace(
        workload({GPU_RESOURCE: 1}, 6, EQUAL, current={"b": 4}),
        evicted_from=frozenset({"a"}),
        keep_current=True,
    )
    assert placed(Scheduler().schedule(snap, w)) == {"b": 4, "c": 2}


def test_evicted_cluster_is_never_chosen_again() -> None:
    snap = fleet({"a": 8, "b": 1})
    w = replace(workload({GPU_RESOURCE: 1}, 1, EQUAL), evicted_from=frozenset({"a"}))
    assert placed(Scheduler().schedule(snap, w)) == {"b": 1}
    w = replace(workload({GPU_RESOURCE: 2}, 1, EQUAL), evicted_from=frozenset({"a"}))
    result = Scheduler().schedule(snap, w)
    assert not result.ok
    assert result.explanation.statuses["a"].plugin == "ClusterEviction"


def test_a_gang_is_placed_whole_on_one_other_cluster() -> None:
    snap = fleet({"a": 8, "b": 8, "c": 2})
    w = replace(
        workload({GPU_RESOURCE: 1}, 4, EQUAL, gang=GangSpec(4), current={}),
        evicted_from=frozenset({"a"}),
        keep_current=True,  # no effect on a gang
    )
    assert placed(Scheduler().schedule(snap, w)) == {"b": 4}


def test_toleration_seconds_round_trip() -> None:
    raw = {"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}
    tol = Toleration.from_dict(raw)
    assert tol.toleration_seconds == 30
    assert Toleration.from_dict(tol.to_dict()) == tol
    assert "tolerationSeconds" not in Toleration.from_dict({"key": "k"}).to_dict()


def _lws(groups: int, size: int, current: dict[str, int]) -> Workload:
    """A LeaderWorkerSet as the binding gives it: leaders and workers, ``groups`` units."""
    leader = Component("leader", groups, {GPU_RESOURCE: 1})
    worker = Component("worker", groups * (size - 1), {GPU_RESOURCE: 1})
    return Workload(
        "ns/lws",
        (leader, worker),
        Placement.from_dict(EQUAL),
        current=current,
        evicted_from=frozenset({"a"}),
        keep_current=True,
        units=groups,
    )


def test_a_multi_role_divided_workload_keeps_whole_units_on_its_survivors() -> None:
    # 4 groups of 2 pods: b ran 3 groups and a (lost) 1. A fresh division would take b down to 2.
    snap = fleet({"a": 8, "b": 8, "c": 8})
    result = Scheduler().schedule(snap, _lws(4, 2, {"b": 3}))
    assert isinstance(result, ScheduleResult)
    assert result.kept == {"b": 3}
    per_role = {t.name: dict(t.components) for t in result.targets}
    assert per_role["b"]["leader"] >= 3 and per_role["b"]["worker"] >= 3
    assert sum(p["leader"] for p in per_role.values()) == 4
    assert sum(p["worker"] for p in per_role.values()) == 4
    assert len(result.assignments) == 2  # only the lost group's two pods are reserved anew
    fresh = Scheduler().schedule(snap, replace(_lws(4, 2, {"b": 3}), keep_current=False))
    assert isinstance(fresh, ScheduleResult) and not fresh.kept
    assert {t.name: t.components["leader"] for t in fresh.targets} == {"b": 2, "c": 2}


def test_a_role_fixed_per_copy_divides_afresh() -> None:
    # A role that does not scale with the units (a head per copy): nothing is kept, as before.
    head = Component("head", 1, {GPU_RESOURCE: 1})
    worker = Component("worker", 4, {GPU_RESOURCE: 1})
    w = Workload(
        "ns/ray",
        (head, worker),
        Placement.from_dict(EQUAL),
        current={"b": 3},
        evicted_from=frozenset({"a"}),
        keep_current=True,
        units=4,
    )
    result = Scheduler().schedule(fleet({"a": 8, "b": 8, "c": 8}), w)
    assert isinstance(result, ScheduleResult) and result.kept == {}
