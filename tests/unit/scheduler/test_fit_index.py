"""The incremental per-(cluster, shape) fit index equals a from-scratch scan after any changes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_fixtures import cluster, node

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    ClusterInfo,
    Component,
    NodeInfo,
    PodInfo,
    Scheduler,
    SchedulerCache,
    Taint,
    Toleration,
    nodefit,
)
from flotilla.scheduler.nodefit import FitIndex, NodeFitEngine, PodAssignment, ShapeFit
from flotilla.scheduler.snapshot import ChangeLog, ClusterSummary, SummaryLog
from flotilla.scheduler.workload import PodShape

GiB = 1 << 30
SHAPES = [
    Component("a", 1, {"cpu": 4000, "memory": 8 * GiB, GPU_RESOURCE: 1}).shape,
    Component("b", 1, {"cpu": 2000, "memory": 4 * GiB, GPU_MILLI_RESOURCE: 500}).shape,
    Component("c", 1, {"cpu": 32_000, "memory": 64 * GiB, GPU_RESOURCE: 8}).shape,
    Component("d", 1, {"cpu": 1000, "memory": 1 * GiB}).shape,
    Component("e", 1, {"cpu": 1000, GPU_RESOURCE: 2}, node_selector={"pool": "x"}).shape,
]
NODES = 6

requests = st.sampled_from(
    [
        {"cpu": 2000, "memory": 4 * GiB, GPU_RESOURCE: 1},
        {"cpu": 1000, "memory": 2 * GiB, GPU_MILLI_RESOURCE: 250},
        {"cpu": 1000, "memory": 2 * GiB, GPU_MILLI_RESOURCE: 750},
        {"cpu": 16_000, "memory": 8 * GiB, GPU_RESOURCE: 4},
        {"cpu": 30_000, "memory": 200 * GiB},
    ]
)
operation = st.one_of(
    st.tuples(st.just("add"), st.integers(0, NODES - 1), requests),
    st.tuples(st.just("remove"), st.integers(0, 30), st.just({})),
    st.tuples(st.just("assume"), st.integers(0, NODES - 1), requests),
    st.tuples(st.just("forget"), st.integers(0, 30), st.just({})),
    st.tuples(st.just("resize"), st.integers(0, NODES - 1), st.just({})),
    st.tuples(st.just("relabel"), st.integers(0, NODES - 1), st.just({})),
    st.tuples(st.just("readiness"), st.integers(0, NODES - 1), st.just({})),
    st.tuples(st.just("query"), st.integers(0, len(SHAPES)), st.just({})),
)


def base_cluster() -> ClusterInfo:
    nodes = [
        node(f"n{i}", gpus=(8, 4, 2, 0, 8, 1)[i], cpu=64_000, labels={"pool": "x"} if i % 2 else {})
        for i in range(NODES)
    ]
    nodes.append(node("tainted", taints=[Taint("dedicated", "infra")]))
    return cluster("c", nodes)


def same(a: ShapeFit, b: ShapeFit) -> None:
    assert a.available == b.available
    assert a.candidates == b.candidates
    assert a.node_reasons == b.node_reasons
    assert (a.reason, a.plugin) == (b.reason, b.plugin)


def scratch(engine: NodeFitEngine, info: ClusterInfo, shape: PodShape) -> ShapeFit:
    """A full scan of a copy without change log or memo."""
    return FitIndex.build(engine, replace(info, static_memo={}, changes=None), shape).fit()


def play(cache: SchedulerCache, ops: list[tuple[str, int, dict[str, int]]]) -> Iterator[ClusterInfo]:
    """Apply each operation to cluster ``c`` of ``cache``; yield the cluster after each."""
    pods: list[str] = []
    keys: list[str] = []
    for i, (op, arg, req) in enumerate(ops):
        if op == "add":
            pods.append(f"p{i}")
            cache.add_pod("c", PodInfo(f"p{i}", f"n{arg}", dict(req)))
        elif op == "remove" and pods:
            cache.remove_pod("c", pods.pop(arg % len(pods)))
        elif op == "assume":
            keys.append(f"w{i}")
            cache.assume(f"w{i}", [PodAssignment("c", f"n{arg}", "main", dict(req))])
        elif op == "forget" and keys:
            cache.forget(keys.pop(arg % len(keys)))
        elif op == "resize":
            old = cache.cluster("c").nodes[f"n{arg}"]
            cache.upsert_node("c", replace(old, allocatable={**old.allocatable, "cpu": 8000}, gpu_free=None))
        elif op == "relabel":  # in or out of pool x: the eligible nodes of a selector change
            old = cache.cluster("c").nodes[f"n{arg}"]
            labels = {k: v for k, v in old.labels.items() if k != "pool"}
            if "pool" not in old.labels:
                labels["pool"] = "x"
            cache.upsert_node("c", replace(old, labels=labels))
        elif op == "readiness":
            old = cache.cluster("c").nodes[f"n{arg}"]
            cache.upsert_node("c", replace(old, ready=not old.ready))
        yield cache.snapshot().clusters["c"]


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=40))
def test_incremental_index_equals_full_scan(ops: list[tuple[str, int, dict[str, int]]]) -> None:
    engine = Scheduler().engine
    cache = SchedulerCache()
    cache.update_cluster(base_cluster())
    history = [cache.snapshot().clusters["c"]]
    for info, (op, arg, _) in zip(play(cache, ops), ops, strict=True):
        history.append(info)
        if op == "query":
            shape = SHAPES[arg % len(SHAPES)]
            same(engine.shape_fit(info, shape), scratch(engine, info, shape))
    final = history[-1]
    for shape in SHAPES:
        same(engine.shape_fit(final, shape), scratch(engine, final, shape))
    for info in history[:: max(len(history) // 5, 1)]:  # older snapshots after the index moved on
        for shape in SHAPES:
            same(engine.shape_fit(info, shape), scratch(engine, info, shape))


def test_static_change_starts_a_new_change_log() -> None:
    cache = SchedulerCache()
    cache.update_cluster(base_cluster())
    first = cache.cluster("c")
    cache.add_pod("c", PodInfo("p", "n0", {"cpu": 1000, GPU_RESOURCE: 1}))
    usage = cache.cluster("c")
    assert usage.changes is first.changes and usage.static_memo is first.static_memo
    assert usage.changes is not None and usage.changes.since(first.version, usage.version) == {"n0"}
    old = usage.nodes["n1"]
    cache.upsert_node("c", replace(old, labels={**old.labels, "pool": "y"}))
    relabelled = cache.cluster("c")
    assert relabelled.changes is not usage.changes and relabelled.static_memo is not usage.static_memo
    engine = Scheduler().engine
    same(engine.shape_fit(relabelled, SHAPES[4]), scratch(engine, relabelled, SHAPES[4]))


def test_change_log_forgets_old_versions() -> None:
    log = ChangeLog(10, limit=2)
    for version in range(11, 17):
        log.append(version, [f"n{version}"])
    assert log.since(16, 16) == set()
    assert log.since(14, 16) == {"n15", "n16"}
    assert log.since(15, 14) is None  # asking backwards
    assert log.since(10, 16) is None  # trimmed away


def test_least_recently_used_index_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodefit, "_INDEX_LIMIT", 2)
    engine = Scheduler().engine
    cache = SchedulerCache()
    cache.update_cluster(base_cluster())
    for i, shape in enumerate([SHAPES[0], SHAPES[1], SHAPES[0], SHAPES[2], SHAPES[0], SHAPES[1]]):
        cache.add_pod("c", PodInfo(f"p{i}", f"n{i % NODES}", {"cpu": 1000, GPU_MILLI_RESOURCE: 100}))
        info = cache.cluster("c")
        same(engine.shape_fit(info, shape), scratch(engine, info, shape))
        indexes = info.static_memo[(engine.token, "indexes")]
        assert len(indexes) <= 2 and next(reversed(indexes)) == shape.key
    assert list(indexes) == [SHAPES[0].key, SHAPES[1].key]  # SHAPES[2] was least recently used


def uniform_cluster() -> ClusterInfo:
    """Nodes in few resource states, so the cluster's summary answers for it; a third of them in
    pool x (SHAPES[4] selects it: the summary answers from those nodes' counts)."""
    return cluster(
        "c",
        [
            node(f"n{i}", gpus=(8, 8, 8, 4)[i % 4], cpu=64_000, labels={"pool": "x"} if i % 3 == 0 else {})
            for i in range(12)
        ],
    )


def same_verdict(engine: NodeFitEngine, info: ClusterInfo, shape: PodShape) -> None:
    """``engine``'s verdict (from the summary when it can answer) equals a full scan of the nodes."""
    got = engine.verdict(info, shape)
    want = scratch(Scheduler().engine, info, shape)  # its own token: nothing kept from before
    assert (got.available, got.best_score, got.node_reasons) == (
        want.available,
        want.best_score,
        want.node_reasons,
    )
    assert (got.reason, got.plugin) == (want.reason, want.plugin)


NO_ROOM = Component("g", 1, {"cpu": 1000, GPU_RESOURCE: 16}).shape
"""More GPUs than any node of :func:`uniform_cluster` has."""


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=40))
def test_summary_aggregates_updated_from_changes_equal_a_fresh_pass(
    ops: list[tuple[str, int, dict[str, int]]],
) -> None:
    engine = Scheduler().engine
    cache = SchedulerCache()
    cache.update_cluster(uniform_cluster())
    history = [cache.snapshot().clusters["c"]]
    shapes = [*SHAPES, NO_ROOM]  # SHAPES[4]: the eligible nodes' counts (pool x)
    for info, (op, arg, _) in zip(play(cache, ops), ops, strict=True):
        history.append(info)
        if op == "query":
            same_verdict(engine, info, shapes[arg % len(shapes)])
    for info in [history[-1], *history[:: max(len(history) // 5, 1)]]:  # and older snapshots
        for shape in shapes:
            same_verdict(engine, info, shape)


def test_summary_answers_room_from_columns_and_keeps_aggregates_for_no_room() -> None:
    cache = SchedulerCache()
    cache.update_cluster(uniform_cluster())
    engine = Scheduler().engine
    first = cache.cluster("c")
    assert first.summary is not None and first.summary.log is not None
    usable = engine._summary(first, SHAPES[0])
    assert usable is not None and usable[2] is None  # the summary answers here, from every node
    same_verdict(engine, first, SHAPES[0])  # room: summed from the shape's columns, nothing kept
    assert first.summary.log.aggregates == {}
    same_verdict(engine, first, NO_ROOM)  # no room: the aggregate, which also counts why
    (agg,) = first.summary.log.aggregates.values()
    cache.add_pod("c", PodInfo("p", "n0", {"cpu": 1000, GPU_RESOURCE: 1}))
    second = cache.cluster("c")
    assert second.summary is not None
    assert second.summary.log is first.summary.log and second.summary.seq == first.summary.seq + 1
    same_verdict(engine, second, NO_ROOM)
    assert list(second.summary.log.aggregates.values()) == [agg] and agg.seq == second.summary.seq


def test_summary_answers_a_node_selector_from_the_eligible_nodes_counts() -> None:
    cache = SchedulerCache()
    cache.update_cluster(uniform_cluster())
    engine = Scheduler().engine
    first = cache.cluster("c")
    usable = engine._summary(first, SHAPES[4])
    assert usable is not None and usable[2] == {"n0", "n3", "n6", "n9"}  # pool x
    same_verdict(engine, first, SHAPES[4])
    cache.add_pod("c", PodInfo("p", "n3", {"cpu": 1000, GPU_RESOURCE: 4}))  # n3 (4 GPUs) is full
    full = cache.cluster("c")
    same_verdict(engine, full, SHAPES[4])
    old = cache.cluster("c").nodes["n1"]
    cache.upsert_node("c", replace(old, labels={**old.labels, "pool": "x"}))  # n1 joins pool x
    relabelled = cache.cluster("c")
    usable = engine._summary(relabelled, SHAPES[4])
    assert usable is not None and "n1" in usable[2]
    same_verdict(engine, relabelled, SHAPES[4])
    # 2-GPU pods: n0, n6, n9 (8 GPUs) 4 each, n3 (4 GPUs) 2, then none on n3, then n1 (8 GPUs) 4 more
    assert [engine.verdict(info, SHAPES[4]).available for info in (first, full, relabelled)] == [14, 12, 16]


def test_selector_aggregate_recounted_when_the_eligible_nodes_change() -> None:
    cache = SchedulerCache()
    cache.update_cluster(uniform_cluster())
    engine = Scheduler().engine
    for name, gpus in (("n0", 8), ("n3", 4), ("n6", 8), ("n9", 8)):  # pool x full
        cache.add_pod("c", PodInfo(f"p-{name}", name, {"cpu": 1000, GPU_RESOURCE: gpus}))
    full = cache.cluster("c")
    assert engine.verdict(full, SHAPES[4]).available == 0  # no room: kept as an aggregate
    assert full.summary is not None and full.summary.log is not None
    assert (engine.token, SHAPES[4].key) in full.summary.log.aggregates
    old = full.nodes["n1"]
    cache.upsert_node("c", replace(old, labels={**old.labels, "pool": "x"}))  # n1 joins pool x
    relabelled = cache.cluster("c")
    same_verdict(engine, relabelled, SHAPES[4])
    assert engine.verdict(relabelled, SHAPES[4]).available == 4


def test_summary_log_forgets_old_changes_and_branches() -> None:
    log = SummaryLog(0, limit=2)
    nodes = [node(f"n{i}") for i in range(6)]
    for n in nodes:
        log.append(((n, 1),))
    assert log.head == 6
    assert log.since(6, 6) == []
    assert log.since(4, 6) == [((nodes[4], 1),), ((nodes[5], 1),)]
    assert log.since(1, 6) is None  # forgotten
    assert log.since(5, 4) is None  # backwards
    summary = ClusterSummary.of(nodes[:2])
    newer = summary.updated((), nodes[2:3])
    branch = summary.updated((), nodes[3:4])  # off an older summary: a new lineage
    assert newer.log is summary.log and branch.log is not summary.log


class _PerNode:
    """A node filter that does not say what it reads: the engine runs it node by node."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name = inner, inner.name

    def node_filter(self, shape: PodShape, node: NodeInfo) -> str | None:
        return self.inner.node_filter(shape, node)  # type: ignore[no-any-return]


class _AllLabels(_PerNode):
    """A node filter reading node metadata that does not name the labels it reads: the engine
    groups nodes by all their labels."""

    def reads_node_metadata_only(self, shape: PodShape) -> bool:
        return self.inner.reads_node_metadata_only(shape)  # type: ignore[no-any-return]


ELIGIBILITY_SHAPES = [
    *SHAPES,
    Component("f", 1, {"cpu": 1000}, tolerations=[Toleration(key="dedicated", operator="Exists")]).shape,
    Component(
        "g",
        1,
        {"cpu": 1000},
        node_affinity=[{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n3"]}]}],
    ).shape,
    Component(
        "h",
        1,
        {"cpu": 1000},
        node_affinity=[{"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["y"]}]}],
    ).shape,
    Component(
        "i",
        1,
        {"cpu": 1000},
        node_affinity=[{"matchExpressions": [{"key": "pool", "operator": "DoesNotExist"}]}],
    ).shape,
]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["x", "y", None]), st.booleans(), st.booleans()), min_size=1, max_size=12
    )
)
def test_eligibility_by_node_group_equals_node_by_node(specs: list[tuple[str | None, bool, bool]]) -> None:
    nodes = []
    for i, (pool, tainted, ready) in enumerate(specs):
        n = node(
            f"n{i}",
            # Every real node has a label of its own: grouping must read only the named labels.
            labels={"kubernetes.io/hostname": f"n{i}", **({"pool": pool} if pool else {})},
            taints=[Taint("dedicated", "gpu")] if tainted else [],
        )
        nodes.append(replace(n, ready=ready))
    grouped = Scheduler().engine
    per_node = Scheduler().engine
    per_node.filters = tuple(_PerNode(f) for f in per_node.filters)
    all_labels = Scheduler().engine
    all_labels.filters = tuple(_AllLabels(f) for f in all_labels.filters)
    for shape in ELIGIBILITY_SHAPES:
        info = cluster("c", nodes)
        want = per_node.eligible(info, shape)
        for engine in (grouped, all_labels):
            got = engine.eligible(cluster("c", nodes), shape)
            assert got == want
            assert list(got[1]) == list(want[1])  # reasons in the same order


def test_nodes_grouped_by_the_labels_the_filters_name() -> None:
    nodes = [
        node(f"n{i}", labels={"kubernetes.io/hostname": f"n{i}", "pool": "xy"[i % 2]}) for i in range(10)
    ]
    info = cluster("c", nodes)
    engine = Scheduler().engine
    engine.eligible(info, SHAPES[0])  # no selector: no label read
    engine.eligible(info, SHAPES[4])  # pool
    assert len(info.static_memo[("node-groups", ())]) == 1
    assert len(info.static_memo[("node-groups", ("pool",))]) == 2


@settings(max_examples=40, deadline=None)
@given(st.lists(operation, max_size=30), st.integers(0, len(SHAPES)), st.booleans())
def test_fleet_verdicts_equal_the_verdict_of_each_cluster(
    ops: list[tuple[str, int, dict[str, int]]], pick: int, matrix: bool
) -> None:
    """``verdicts`` (a pass over the fleet) answers as ``verdict`` one cluster at a time, and
    memoises the same objects; the versions of one cluster stand in for a fleet (room, no room,
    a node selector, aggregates kept from earlier queries). ``matrix``: the clusters with room
    are summed as array rows (:class:`StateMatrix`), as from 64 clusters, else one by one."""
    engine = Scheduler().engine
    engine.matrix_min_clusters = 1 if matrix else 10**9
    cache = SchedulerCache()
    cache.update_cluster(uniform_cluster())
    shapes = [*SHAPES, NO_ROOM]
    history = [cache.snapshot().clusters["c"]]
    for info, (op, arg, _) in zip(play(cache, ops), ops, strict=True):
        history.append(info)
        if op == "query":  # some versions already answered (memo hits, aggregates kept)
            engine.verdict(info, shapes[arg % len(shapes)])
    shape = shapes[pick]
    fleet = [replace(info, name=f"c{i}") for i, info in enumerate(history)]  # a fleet: one name each
    for info, old in zip(fleet, history, strict=True):
        info.memo.update(old.memo)
    verdicts = engine.verdicts(fleet, shape)
    assert len(verdicts) == len(fleet)
    for info, verdict in zip(fleet, verdicts, strict=True):
        assert engine.verdict(info, shape) is verdict
        same_verdict(engine, info, shape)
