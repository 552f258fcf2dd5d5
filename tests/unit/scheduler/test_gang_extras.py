"""Gangs with replicas above ``minMember`` (the "extras"): placed after the required pods, as
many as fit, never at the cost of the gang's all-or-nothing guarantee."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from sched_fixtures import GiB, cluster, node, snapshot

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    Component,
    GangSpec,
    Placement,
    ScheduleResult,
    Snapshot,
    Unschedulable,
    Workload,
    schedule,
)
from flotilla.scheduler.snapshot import MILLI_PER_GPU

GPU8 = {"cpu": 8000, "memory": 64 * GiB, GPU_RESOURCE: 8}
GPU1 = {"cpu": 1000, "memory": 8 * GiB, GPU_RESOURCE: 1}
CPU = {"cpu": 1000, "memory": 1 * GiB}
DIVIDED = Placement.from_dict({"replicaScheduling": {"replicaSchedulingType": "Divided"}})
DUPLICATED = Placement.from_dict({"replicaScheduling": {"replicaSchedulingType": "Duplicated"}})


def ok(outcome: ScheduleResult | Unschedulable) -> ScheduleResult:
    assert isinstance(outcome, ScheduleResult), outcome.message
    return outcome


def per_component(result: ScheduleResult) -> dict[str, int]:
    return dict(Counter(a.component for a in result.assignments))


def elastic(workers: int = 4, *, placement: Placement = DIVIDED, multi: bool = False) -> Workload:
    """A master and ``workers`` workers of 8 GPUs; the gang needs the master and 2 workers."""
    return Workload(
        "ns/elastic",
        (Component("master", 1, GPU8), Component("worker", workers, GPU8)),
        placement,
        gang=GangSpec(min_member=3, min_task_member={"master": 1, "worker": 2}, allow_multi_cluster=multi),
    )


@pytest.mark.parametrize("placement", [DIVIDED, DUPLICATED], ids=["divided", "duplicated"])
def test_extras_that_fit_are_all_placed_in_the_gangs_cluster(placement: Placement) -> None:
    # The replica scheduling type does not change a gang: one cluster, required pods then extras.
    result = ok(
        schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(5)])), elastic(placement=placement))
    )
    assert per_component(result) == {"master": 1, "worker": 4}
    assert [(t.name, t.replicas, dict(t.components)) for t in result.targets] == [
        ("c", 5, {"master": 1, "worker": 4})
    ]
    assert result.explanation.mode == "gang"
    assert len({a.node for a in result.assignments}) == 5


@pytest.mark.parametrize("nodes, workers", [(4, 3), (3, 2)], ids=["partly", "none"])
def test_extras_that_do_not_fit_are_left_out_and_the_gang_still_binds(nodes: int, workers: int) -> None:
    result = ok(schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(nodes)])), elastic()))
    assert per_component(result) == {"master": 1, "worker": workers}
    assert result.targets[0].components == {"master": 1, "worker": workers}
    assert result.explanation.replicas == {"c": 1 + workers}


def test_a_gang_short_of_its_required_pods_places_no_extras() -> None:
    outcome = schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(2)])), elastic())
    assert isinstance(outcome, Unschedulable)
    assert "could not bind all required pods on their nodes at once" in outcome.message


def test_extras_never_take_the_room_the_required_pods_need() -> None:
    # The extras' role comes first and its pods are small: bound first, they would take GPUs on
    # the only node and leave the required 8-GPU pod nowhere to go.
    job = Workload(
        "ns/mixed",
        (Component("small", 8, GPU1), Component("big", 1, GPU8)),
        DIVIDED,
        gang=GangSpec(min_member=1, min_task_member={"big": 1}),
    )
    assert job.gang_requirement() == {"small": 0, "big": 1}
    result = ok(schedule(snapshot(cluster("c", [node("n0")])), job))
    assert per_component(result) == {"big": 1}
    assert result.targets[0].components == {"small": 0, "big": 1}
    # With a second node the extras fill it, after the required pod took the first.
    result = ok(schedule(snapshot(cluster("c", [node("n0"), node("n1")])), job))
    assert per_component(result) == {"big": 1, "small": 8}
    big = next(a for a in result.assignments if a.component == "big")
    assert all(a.node != big.node for a in result.assignments if a.component == "small")


def test_a_role_whose_extras_do_not_fit_does_not_stop_the_other_roles_extras() -> None:
    # "gpu" extras fit nowhere (one 8-GPU node, taken by the required gpu pod); the "cpu"
    # role's extras still bind.
    job = Workload(
        "ns/two-roles",
        (Component("gpu", 3, GPU8), Component("cpu", 3, CPU)),
        DIVIDED,
        gang=GangSpec(min_member=2, min_task_member={"gpu": 1, "cpu": 1}),
    )
    result = ok(schedule(snapshot(cluster("c", [node("n0")])), job))
    assert per_component(result) == {"gpu": 1, "cpu": 3}


def test_extras_of_fractional_gpu_pods_share_devices_after_the_required_pods() -> None:
    job = Workload(
        "ns/share",
        (Component("infer", 5, {"cpu": 500, "memory": GiB, GPU_MILLI_RESOURCE: 400}),),
        DIVIDED,
        gang=GangSpec(min_member=2),
    )
    # 2 GPUs of which one is half used: 400-milli pods fit 2 on the free device, 1 on the other.
    c = cluster("c", [node("n0", gpus=2, gpu_free=(MILLI_PER_GPU, 500))])
    result = ok(schedule(snapshot(c), job))
    assert per_component(result) == {"infer": 3}
    taken = Counter(d for a in result.assignments for d in a.gpu_devices)
    assert taken == {0: 2, 1: 1}


def test_multi_cluster_gang_extras_spill_over_the_selected_clusters() -> None:
    a = cluster("a", [node("a0"), node("a1")])
    b = cluster("b", [node("b0"), node("b1")])
    result = ok(schedule(snapshot(a, b), elastic(workers=5, multi=True)))
    assert result.explanation.mode == "gang-multi-cluster"
    # 4 nodes: the master, the 2 required workers and one extra worker.
    assert per_component(result) == {"master": 1, "worker": 3}
    assert sum(t.replicas for t in result.targets) == 4
    assert {t.name for t in result.targets} == {"a", "b"}
    c = cluster("c", [node("c0"), node("c1"), node("c2")])
    result = ok(schedule(snapshot(a, b, c), elastic(workers=5, multi=True)))
    assert per_component(result) == {"master": 1, "worker": 5}


def test_multi_cluster_gang_short_of_its_required_pods_places_nothing() -> None:
    outcome = schedule(snapshot(cluster("a", [node("a0")]), cluster("b", [node("b0")])), elastic(multi=True))
    assert isinstance(outcome, Unschedulable)
    assert "the gang could not be bound whole across the selected clusters" in outcome.message


def _random_case(rng: random.Random) -> tuple[Snapshot, Workload]:
    clusters = []
    for c in range(rng.randint(1, 3)):
        nodes = []
        for n in range(rng.randint(1, 4)):
            gpus = rng.choice([0, 2, 4, 8])
            nodes.append(
                node(f"c{c}n{n}", gpus=gpus, used_gpus=rng.randint(0, gpus), cpu=rng.choice([4000, 32000]))
            )
        clusters.append(cluster(f"c{c}", nodes))
    comps = []
    for r in range(rng.randint(1, 3)):
        req: dict[str, Any] = {"cpu": rng.choice([500, 2000]), "memory": GiB}
        kind = rng.random()
        if kind < 0.5:
            req[GPU_RESOURCE] = rng.choice([1, 2, 4, 8])
        elif kind < 0.8:
            req[GPU_MILLI_RESOURCE] = rng.choice([250, 500, 700])
        comps.append(Component(f"r{r}", rng.randint(1, 5), req))
    total = sum(c.replicas for c in comps)
    gang = GangSpec(
        rng.randint(1, total),
        {c.name: rng.randint(0, c.replicas) for c in comps if rng.random() < 0.5},
        allow_multi_cluster=rng.random() < 0.4,
    )
    return Snapshot.of(clusters), Workload("ns/r", tuple(comps), DIVIDED, gang=gang)


def _within_capacity(snap: Snapshot, result: ScheduleResult) -> None:
    """No node holds more than it has: GPUs per device, and CPU."""
    devices: dict[tuple[str, str], list[int]] = {}
    cpu: Counter[tuple[str, str]] = Counter()
    for a in result.assignments:
        n = snap.clusters[a.cluster].nodes[a.node]
        devs = devices.setdefault((a.cluster, a.node), list(n.devices))
        for d in a.gpu_devices:
            devs[d] -= a.gpu_milli
            assert devs[d] >= 0, (a, devs)
        cpu[(a.cluster, a.node)] += a.requests.get("cpu", 0)
        assert cpu[(a.cluster, a.node)] <= n.free["cpu"]


@pytest.mark.parametrize("seed", range(60))
def test_random_gangs_bind_their_required_pods_whole_and_extras_only_within_their_replicas(seed: int) -> None:
    snap, job = _random_case(random.Random(seed))
    outcome = schedule(snap, job)
    if not outcome.ok:
        return
    placed = per_component(outcome)
    need = job.gang_requirement()
    for comp in job.components:
        assert need[comp.name] <= placed.get(comp.name, 0) <= comp.replicas, (placed, need)
    assert job.gang is not None
    if not job.gang.allow_multi_cluster:
        assert len(outcome.targets) == 1
    _within_capacity(snap, outcome)


def test_random_gangs_sometimes_place_extras_and_sometimes_fail() -> None:
    """The random cases above exercise all three outcomes (else they would prove little)."""
    seen: Counter[str] = Counter()
    for seed in range(60):
        snap, job = _random_case(random.Random(seed))
        outcome = schedule(snap, job)
        if not outcome.ok:
            seen["unschedulable"] += 1
            continue
        extras = len(outcome.assignments) - sum(job.gang_requirement().values())
        seen["extras" if extras else "exact"] += 1
    assert seen["unschedulable"] and seen["extras"] and seen["exact"], seen
