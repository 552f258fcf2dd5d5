"""The scheduler's fast paths decide exactly as a brute-force reference, decision by decision.

Fast: one :class:`Scheduler` over the cache's snapshots, so every shortcut is live (node entries
shared per resource state, per-shape indexes and fleet views kept across decisions from the
change logs, cluster summaries answering for clusters, roles of one shape checked by count).
Reference: a scheduler that shares nothing across nodes and simulates bindings pod by pod, on a
copy of each snapshot rebuilt from JSON (no change log, no memo, no summary), so every node of
every cluster is evaluated from scratch. Random fleets (clusters, nodes, GPU models, whole and
shared GPUs, node and cluster taints, readiness) go through random events (pods arriving and
leaving, nodes changing, joining and leaving, clusters replaced) between random decisions,
which are reserved and sometimes rolled back.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_fixtures import node

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterInfo,
    Component,
    GangSpec,
    Placement,
    PodInfo,
    Scheduler,
    SchedulerCache,
    Snapshot,
    Taint,
    Toleration,
    Workload,
)
from flotilla.scheduler.nodefit import NodeFitEngine
from flotilla.scheduler.snapshot import ClusterSummary

GiB = 1 << 30
MODELS = ("H100", "A100", "L4")
DEDICATED = Taint("dedicated", "gpu")
PLACEMENTS: list[dict[str, Any]] = [
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
    {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}},
]

# Few node types, so that nodes often share a resource state (as in real fleets), plus odd ones.
TYPES = st.sampled_from([(1000,) * 8, (0,) * 8, (1000, 1000, 0, 0), (500, 1000), ()])
devices = st.one_of(
    TYPES, TYPES, TYPES, st.lists(st.sampled_from([0, 250, 500, 1000]), max_size=8).map(tuple)
)


@st.composite
def nodes(draw: st.DrawFn, name: str) -> Any:
    gpu_free = draw(devices)
    n = node(
        name,
        gpus=len(gpu_free),
        gpu_free=gpu_free,
        model=draw(st.sampled_from(MODELS[:2])),
        cpu=draw(st.sampled_from([64_000, 64_000, 32_000])),
        memory=512 * GiB,
        taints=[DEDICATED] if draw(st.integers(0, 5)) == 0 else [],
    )
    if draw(st.integers(0, 7)) == 0:
        n = type(n)(n.name, n.allocatable, n.used, n.labels, n.taints, n.gpu_free, ready=False)
    return n


@st.composite
def clusters(draw: st.DrawFn, name: str) -> ClusterInfo:
    members = [draw(nodes(f"{name}-n{i}")) for i in range(draw(st.integers(0, 10)))]
    return ClusterInfo(
        name,
        {n.name: n for n in members},
        taints=(Taint("maintenance", "", "NoSchedule"),) if draw(st.integers(0, 6)) == 0 else (),
        ready=draw(st.integers(0, 8)) != 0,
        region=draw(st.sampled_from(["r1", "r2"])),
    )


requests = st.one_of(
    st.builds(
        lambda g, c: {"cpu": c, "memory": 8 * GiB, GPU_RESOURCE: g},
        st.sampled_from([1, 1, 2, 4, 8]),
        st.sampled_from([1000, 8000]),
    ),
    st.builds(
        lambda m, c: {"cpu": c, "memory": 4 * GiB, GPU_MILLI_RESOURCE: m},
        st.sampled_from([250, 500, 750]),
        st.sampled_from([500, 4000]),
    ),
    st.builds(lambda c: {"cpu": c, "memory": 2 * GiB}, st.sampled_from([1000, 16_000])),
)


@st.composite
def workloads(draw: st.DrawFn, key: str) -> Workload:
    comps: list[Component] = []
    for i in range(draw(st.integers(1, 2))):
        if comps and draw(st.booleans()):  # a second role of the same pod shape (leader/workers)
            first = comps[0]
            comps.append(
                Component(
                    f"r{i}",
                    draw(st.integers(0, 4)),
                    first.requests,
                    first.node_selector,
                    (),
                    first.tolerations,
                )
            )
            continue
        selector = {GPU_PRODUCT_LABEL: draw(st.sampled_from(MODELS))} if draw(st.integers(0, 3)) == 0 else {}
        tolerations = (Toleration("dedicated", "Exists"),) if draw(st.booleans()) else ()
        comps.append(Component(f"r{i}", draw(st.integers(0, 4)), draw(requests), selector, (), tolerations))
    gang = None
    if draw(st.integers(0, 3)) == 0:
        total = sum(c.replicas for c in comps)
        gang = GangSpec(min_member=draw(st.integers(0, total)), allow_multi_cluster=draw(st.booleans()))
    raw = dict(draw(st.sampled_from(PLACEMENTS)))
    if draw(st.integers(0, 4)) == 0:
        raw["clusterTolerations"] = [{"key": "maintenance", "operator": "Exists"}]
    return Workload(key, tuple(comps), Placement.from_dict(raw), gang=gang)


CLUSTERS = ("a", "b", "c", "d")
inventory_event = st.one_of(
    st.tuples(st.just("pod"), st.sampled_from(CLUSTERS), st.integers(0, 5), requests),
    st.tuples(st.just("unpod"), st.sampled_from(CLUSTERS), st.integers(0, 40), st.none()),
    st.tuples(st.just("node"), st.sampled_from(CLUSTERS), st.integers(0, 10), st.none()),
    st.tuples(st.just("unnode"), st.sampled_from(CLUSTERS), st.integers(0, 10), st.none()),
    st.tuples(st.just("cluster"), st.sampled_from(CLUSTERS), st.integers(0, 0), st.none()),
    st.tuples(st.just("uncluster"), st.sampled_from(CLUSTERS), st.integers(0, 0), st.none()),
    st.tuples(st.just("schedule"), st.sampled_from(CLUSTERS), st.integers(0, 9), st.none()),
    st.tuples(st.just("forget"), st.sampled_from(CLUSTERS), st.integers(0, 9), st.none()),
)
# Decisions are most of the steps, so that views and indexes live through many of them.
event = st.one_of(
    inventory_event,
    st.tuples(st.just("schedule"), st.sampled_from(CLUSTERS), st.integers(0, 9), st.none()),
    st.tuples(st.just("schedule"), st.sampled_from(CLUSTERS), st.integers(0, 9), st.none()),
)


def apply(
    cache: SchedulerCache, draw: st.DrawFn, op: str, cluster: str, i: int, req: dict[str, int] | None
) -> None:
    """One inventory event on ``cache`` (events on an unknown cluster or node are skipped)."""
    present = cluster in cache.snapshot().clusters
    if op == "cluster":
        cache.update_cluster(draw(clusters(cluster)))
    elif op == "uncluster":
        cache.remove_cluster(cluster)
    elif not present:
        return
    elif op == "pod":
        names = sorted(cache.cluster(cluster).nodes)
        if names and req is not None:
            owner = f"ns/w{draw(st.integers(0, 9))}" if draw(st.booleans()) else None
            pod = PodInfo(f"{cluster}-p{i}-{len(names)}", names[i % len(names)], req, owner=owner)
            cache.add_pod(cluster, pod)
    elif op == "unpod":
        for n in range(12):
            cache.remove_pod(cluster, f"{cluster}-p{i % 6}-{n}")
    elif op == "node":
        cache.upsert_node(cluster, draw(nodes(f"{cluster}-n{i}")))
    elif op == "unnode":
        cache.remove_node(cluster, f"{cluster}-n{i}")


def reference(scheduler: Scheduler, snap: Snapshot, w: Workload) -> dict[str, Any]:
    return scheduler.schedule(Snapshot.from_dict(snap.to_dict()), w).to_dict()


def check_summaries(snap: Snapshot) -> None:
    for info in snap.ordered:
        assert info.summary == ClusterSummary.of(info.nodes.values()), info.name


@pytest.mark.parametrize("summary_max_states", [NodeFitEngine.summary_max_states, 1.0])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fast_path_decides_as_the_brute_force_reference(
    summary_max_states: float, data: st.DataObject
) -> None:
    """As shipped, and with the summaries answering whenever they can be exact."""
    cache = SchedulerCache(clock=lambda: 0.0)
    for name in CLUSTERS[: data.draw(st.integers(2, 4))]:
        cache.update_cluster(data.draw(clusters(name)))
    fast = Scheduler()
    fast.engine.summary_max_states = summary_max_states
    slow = Scheduler()
    slow.engine.by_resources = False  # every node evaluated on its own
    slow.engine.additive = False  # roles bound together are simulated pod by pod
    # A few workload specs, reused, so that decisions share node-check keys (fleet views).
    specs = [data.draw(workloads("spec")) for _ in range(data.draw(st.integers(1, 3)))]
    for op, cluster, i, req in data.draw(st.lists(event, min_size=15, max_size=40)):
        if op == "schedule":
            spec = specs[i % len(specs)]
            w = Workload(f"ns/w{i}", spec.components, spec.placement, gang=spec.gang)
            snap = cache.snapshot()
            outcome = fast.schedule(snap, w)
            assert outcome.to_dict() == reference(slow, snap, w)
            if outcome.ok:
                cache.assume(w.key, outcome.assignments)
        elif op == "forget":
            cache.forget(f"ns/w{i}")
        else:
            apply(cache, data.draw, op, cluster, i, req)
        check_summaries(cache.snapshot())


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_cluster_summary_equals_one_recomputed_from_scratch(data: st.DataObject) -> None:
    """The summaries the cache keeps from node and pod events equal a recount of the nodes."""
    cache = SchedulerCache(clock=lambda: 0.0)
    for name in CLUSTERS:
        cache.update_cluster(data.draw(clusters(name)))
    scheduler = Scheduler()
    for op, cluster, i, req in data.draw(st.lists(event, min_size=1, max_size=40)):
        if op == "schedule":
            w = data.draw(workloads(f"ns/w{i}"))
            outcome = scheduler.schedule(cache.snapshot(), w)
            if outcome.ok:
                cache.assume(w.key, outcome.assignments)
        elif op == "forget":
            cache.forget(f"ns/w{i}")
        else:
            apply(cache, data.draw, op, cluster, i, req)
        check_summaries(cache.snapshot())
    assert all(info.summary is not None for info in cache.snapshot().ordered)


def test_summary_answers_a_cluster_with_no_room_exactly_as_its_nodes() -> None:
    """A cluster whose nodes are all full for a shape: the summary's verdict and reason
    histogram are those of the per-node scan, and no index is built for the shape."""
    cache = SchedulerCache()
    full = [node(f"n{i}", gpus=8, gpu_free=(0,) * 8) for i in range(3)]
    half = [node(f"h{i}", gpus=4, gpu_free=(1000, 1000, 0, 0)) for i in range(2)]
    cache.update_cluster(ClusterInfo("a", {n.name: n for n in full + half}))
    scheduler = Scheduler()
    info = cache.cluster("a")
    shape = Component("m", 1, {"cpu": 1000, GPU_RESOURCE: 4}).shape
    fit = scheduler.engine.summary_fit(info, shape)
    assert fit is not None
    assert fit.available == 0 and fit.candidates == []
    assert fit.node_reasons == {f"insufficient {GPU_RESOURCE}": 5}
    assert (fit.reason, fit.plugin) == (f"insufficient {GPU_RESOURCE} on any single node", "NodeResourcesFit")
    assert not info.static_memo.get((scheduler.engine.token, "indexes"))
    # A shape some node has room for is left to the index.
    assert scheduler.engine.summary_fit(info, Component("m", 1, {"cpu": 1000, GPU_RESOURCE: 2}).shape) is None


def test_a_copy_with_other_nodes_does_not_read_the_summary() -> None:
    """``dataclasses.replace`` keeps the summary field; the summary of the old nodes must not
    answer for the new ones."""
    from dataclasses import replace

    cache = SchedulerCache()
    full = [node(f"n{i}", gpus=8, gpu_free=(0,) * 8) for i in range(2)]
    cache.update_cluster(ClusterInfo("a", {n.name: n for n in full}))
    info = cache.cluster("a")
    shape = Component("m", 1, {"cpu": 1000, GPU_RESOURCE: 4}).shape
    engine = Scheduler().engine
    assert engine.summary_fit(info, shape) is not None  # full: answered by the summary
    roomy = replace(info, nodes={"n2": node("n2", gpus=8)}, static_memo={}, changes=None)
    assert engine.summary_fit(roomy, shape) is None
    assert engine.shape_fit(roomy, shape).available == 2


@pytest.mark.parametrize(("per_role", "fits"), [(2, False), (1, True)])
def test_roles_of_one_shape_fit_together_only_when_the_count_holds_them(per_role: int, fits: bool) -> None:
    """Two roles of one pod shape, each fitting alone: together only if the cluster holds both
    (3 x 8-GPU pods fit; 2 + 2 do not, 1 + 1 do), as the pod-by-pod simulation says."""
    cache = SchedulerCache()
    cache.update_cluster(ClusterInfo("a", {f"n{i}": node(f"n{i}", gpus=8) for i in range(3)}))
    req = {"cpu": 1000, GPU_RESOURCE: 8}
    w = Workload(
        "ns/w",
        (Component("leader", per_role, req), Component("worker", per_role, req)),
        Placement.from_dict({"replicaScheduling": {"replicaSchedulingType": "Duplicated"}}),
    )
    slow = Scheduler()
    slow.engine.additive = False
    snap = cache.snapshot()
    outcome = Scheduler().schedule(snap, w)
    assert outcome.ok is fits
    assert outcome.to_dict() == reference(slow, snap, w)
