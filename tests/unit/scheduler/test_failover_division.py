"""Failover decisions: a Divided workload keeps its survivors' replicas; evicted clusters stay out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sched_fixtures import cluster, node, snapshot, workload

from flotilla.scheduler import GPU_RESOURCE, GangSpec, Scheduler, ScheduleResult, Toleration

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
