"""Property tests over random fleets and workloads."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st
from sched_fixtures import cluster, node

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    Component,
    GangSpec,
    Placement,
    PodAssignment,
    Scheduler,
    SchedulerCache,
    ScheduleResult,
    Snapshot,
    Workload,
)

SETTINGS = settings(max_examples=40, deadline=None)
PLACEMENTS = [
    {},
    {"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}},
    {"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted"}},
    {
        "replicaScheduling": {
            "replicaSchedulingType": "Divided",
            "replicaDivisionPreference": "Weighted",
            "weightPreference": {"dynamicWeight": "AvailableReplicas"},
        }
    },
]

devices = st.lists(st.sampled_from([0, 0, 250, 500, 1000, 1000, 1000]), min_size=0, max_size=8).map(tuple)


@st.composite
def fleets(draw: st.DrawFn) -> Snapshot:
    clusters = []
    for c in range(draw(st.integers(1, 4))):
        nodes = []
        for n in range(draw(st.integers(1, 5))):
            gpu_free = draw(devices)
            nodes.append(
                node(
                    f"c{c}n{n}",
                    gpus=len(gpu_free),
                    gpu_free=gpu_free,
                    cpu=draw(st.sampled_from([4000, 16_000, 64_000])),
                )
            )
        clusters.append(cluster(f"c{c}", nodes))
    return Snapshot.of(clusters)


requests = st.one_of(
    st.builds(lambda g, c: {"cpu": c, GPU_RESOURCE: g}, st.integers(1, 8), st.sampled_from([500, 4000])),
    st.builds(
        lambda m, c: {"cpu": c, GPU_MILLI_RESOURCE: m},
        st.sampled_from([100, 250, 500, 900]),
        st.sampled_from([500, 4000]),
    ),
    st.builds(lambda c: {"cpu": c}, st.sampled_from([1000, 8000])),
)


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    comps = tuple(
        Component(f"r{i}", draw(st.integers(0, 6)), draw(requests)) for i in range(draw(st.integers(1, 2)))
    )
    gang = None
    if draw(st.booleans()):
        total = sum(c.replicas for c in comps)
        gang = GangSpec(min_member=draw(st.integers(0, total)), allow_multi_cluster=draw(st.booleans()))
    return Workload("ns/w", comps, Placement.from_dict(draw(st.sampled_from(PLACEMENTS))), gang=gang)


def assert_fits(snapshot: Snapshot, pods: list[PodAssignment]) -> None:
    """No node gets more than it has free: per resource and per GPU device."""
    used: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    dev_used: dict[tuple[str, str, int], int] = defaultdict(int)
    for p in pods:
        key = (p.cluster, p.node)
        for name, amount in p.requests.items():
            if name not in (GPU_RESOURCE, GPU_MILLI_RESOURCE):
                used[key][name] += amount
        for d in p.gpu_devices:
            dev_used[(p.cluster, p.node, d)] += p.gpu_milli
        assert len(p.gpu_devices) == (
            p.requests.get(GPU_RESOURCE, 0) or (1 if p.requests.get(GPU_MILLI_RESOURCE) else 0)
        )
    for (c, n), res in used.items():
        free = snapshot.clusters[c].nodes[n].free
        for name, amount in res.items():
            assert amount <= free.get(name, 0), (c, n, name)
    for (c, n, d), milli in dev_used.items():
        assert milli <= snapshot.clusters[c].nodes[n].devices[d], (c, n, d)


@SETTINGS
@given(fleets(), workloads())
def test_decisions_never_overcommit_and_are_deterministic(snapshot: Snapshot, w: Workload) -> None:
    outcome = Scheduler().schedule(snapshot, w)
    again = Scheduler().schedule(Snapshot.from_dict(snapshot.to_dict()), w)
    assert outcome.to_dict() == again.to_dict()
    if not isinstance(outcome, ScheduleResult):
        return
    assert_fits(snapshot, outcome.assignments)
    placed: defaultdict[str, int] = defaultdict(int)
    for p in outcome.assignments:
        placed[p.component] += 1
    if w.gang is not None:
        need = w.gang_requirement()
        assert all(placed[name] >= n for name, n in need.items())  # the whole gang, never part of it
        if not w.gang.allow_multi_cluster and outcome.assignments:
            assert len({p.cluster for p in outcome.assignments}) == 1
    elif w.placement.replica_scheduling.type == "Divided":
        for comp in w.components:
            assert placed[comp.name] == comp.replicas  # divided replicas sum to the request
    else:
        for t in outcome.targets:
            assert t.components == {c.name: c.replicas for c in w.components}


@SETTINGS
@given(fleets(), st.lists(workloads(), min_size=1, max_size=6))
def test_reservations_prevent_double_booking_and_expire(snapshot: Snapshot, batch: list[Workload]) -> None:
    now = [0.0]
    cache = SchedulerCache(clock=lambda: now[0], assume_ttl=60)
    for c in snapshot.clusters.values():
        cache.update_cluster(c)
    scheduler = Scheduler()
    reserved: list[PodAssignment] = []
    for i, w in enumerate(batch):
        outcome = scheduler.schedule(cache.snapshot(), Workload(f"w{i}", w.components, w.placement, w.gang))
        if isinstance(outcome, ScheduleResult):
            cache.assume(f"w{i}", outcome.assignments)
            reserved.extend(outcome.assignments)
    assert_fits(snapshot, reserved)  # all decisions together still fit the original free capacity
    now[0] += 61
    after = cache.snapshot()
    for c in snapshot.clusters.values():
        for n in c.nodes.values():
            assert after.clusters[c.name].nodes[n.name].devices == n.devices
            assert after.clusters[c.name].nodes[n.name].free == n.free


@SETTINGS
@given(fleets(), workloads())
def test_gang_is_whole_or_absent(snapshot: Snapshot, w: Workload) -> None:
    total = sum(c.replicas for c in w.components)
    gang_w = Workload(w.key, w.components, w.placement, GangSpec(min_member=total))
    outcome = Scheduler().schedule(snapshot, gang_w)
    if isinstance(outcome, ScheduleResult):
        assert len(outcome.assignments) == total
    else:
        assert not hasattr(outcome, "assignments")
