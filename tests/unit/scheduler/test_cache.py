from __future__ import annotations

from dataclasses import fields, replace

from hypothesis import given, settings
from hypothesis import strategies as st
from sched_fixtures import cluster, node, workload

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    ClusterInfo,
    PodInfo,
    Scheduler,
    SchedulerCache,
    ScheduleResult,
    Taint,
    Unschedulable,
)
from flotilla.scheduler.nodefit import PodAssignment


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GPU4 = {"cpu": 1000, GPU_RESOURCE: 4}


def make_cache(clock: FakeClock | None = None) -> SchedulerCache:
    cache = SchedulerCache(clock=clock or FakeClock())
    cache.update_cluster(cluster("c", [node("n0"), node("n1", gpus=4)]))
    return cache


def test_assume_prevents_double_booking_then_forget_releases() -> None:
    cache = make_cache()
    scheduler = Scheduler()
    placed = []
    for i in range(4):
        outcome = scheduler.schedule(cache.snapshot(), workload(GPU4, key=f"w{i}"))
        if isinstance(outcome, ScheduleResult):
            cache.assume(f"w{i}", outcome.assignments)
            placed.append(outcome.assignments[0])
    assert len(placed) == 3  # 8 + 4 GPUs hold exactly three 4-GPU pods
    devices = [(p.node, d) for p in placed for d in p.gpu_devices]
    assert len(devices) == len(set(devices)) == 12
    assert isinstance(scheduler.schedule(cache.snapshot(), workload(GPU4, key="late")), Unschedulable)
    assert cache.forget("w0") and not cache.forget("w0")  # idempotent
    assert isinstance(scheduler.schedule(cache.snapshot(), workload(GPU4, key="late")), ScheduleResult)


def test_reservations_expire_after_ttl() -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    outcome = Scheduler().schedule(cache.snapshot(), workload({GPU_RESOURCE: 8}))
    assert isinstance(outcome, ScheduleResult)
    cache.assume("w", outcome.assignments)
    assert cache.snapshot().clusters["c"].nodes["n0"].free[GPU_RESOURCE] == 0
    clock.now += 299
    assert cache.expire() == [] and cache.is_assumed("w")
    clock.now += 2
    assert cache.snapshot().clusters["c"].nodes["n0"].free[GPU_RESOURCE] == 8
    assert not cache.is_assumed("w")
    assert cache.expire() == []


def test_confirm_hands_over_to_reported_pods() -> None:
    cache = make_cache()
    outcome = Scheduler().schedule(cache.snapshot(), workload({GPU_RESOURCE: 8}))
    assert isinstance(outcome, ScheduleResult)
    cache.assume("w", outcome.assignments)
    (pod,) = outcome.assignments
    cache.add_pod("c", PodInfo("uid-1", pod.node, pod.requests, pod.gpu_devices))
    assert cache.confirm("w") and not cache.confirm("w")
    assert cache.snapshot().clusters["c"].nodes["n0"].free[GPU_RESOURCE] == 0  # counted once, by the pod
    cache.add_pod("c", PodInfo("uid-1", pod.node, pod.requests, pod.gpu_devices))  # re-add: no double count
    assert cache.snapshot().clusters["c"].nodes["n0"].free[GPU_RESOURCE] == 0
    cache.remove_pod("c", "uid-1")
    cache.remove_pod("c", "uid-1")
    assert cache.snapshot().clusters["c"].nodes["n0"].free[GPU_RESOURCE] == 8


def _free(cache: SchedulerCache, node_name: str) -> int:
    return cache.snapshot().clusters["c"].nodes[node_name].free[GPU_RESOURCE]


def test_reported_pods_take_the_place_of_reserved_pods_one_by_one() -> None:
    cache = SchedulerCache(clock=FakeClock())
    cache.update_cluster(cluster("c", [node("n0"), node("n1"), node("n2")]))
    outcome = Scheduler().schedule(cache.snapshot(), workload({GPU_RESOURCE: 8}, replicas=2, key="ns/w"))
    assert isinstance(outcome, ScheduleResult)
    cache.assume("ns/w", outcome.assignments, owner="ns/w-pods")
    first, second = sorted(outcome.assignments, key=lambda a: a.node)
    assert cache.assumed_pods("ns/w") == 2 and _free(cache, first.node) == _free(cache, second.node) == 0
    # A pod of another workload, and one without an owner, replace nothing.
    spare = next(n for n in ("n0", "n1", "n2") if n not in (first.node, second.node))
    cache.add_pod("c", PodInfo("other", spare, {GPU_RESOURCE: 1}, owner="ns/other"))
    cache.add_pod("c", PodInfo("anon", spare, {GPU_RESOURCE: 1}))
    assert cache.assumed_pods("ns/w") == 2
    # The member binds the first pod where it was reserved: counted once, by the pod.
    assert not cache.add_pod("c", PodInfo("p1", first.node, first.requests, owner="ns/w-pods"))
    assert cache.assumed_pods("ns/w") == 1 and _free(cache, first.node) == 0
    cache.add_pod("c", PodInfo("p1", first.node, first.requests, owner="ns/w-pods"))  # relisted
    assert cache.assumed_pods("ns/w") == 1
    # The member's scheduler puts the second pod elsewhere: the reservation on its node goes.
    assert cache.add_pod("c", PodInfo("p2", spare, second.requests, owner="ns/w-pods"))  # room again
    assert not cache.is_assumed("ns/w") and cache.assumed_pods("ns/w") == 0
    assert _free(cache, second.node) == 8 and _free(cache, spare) == 0
    assert not cache.confirm("ns/w")  # nothing left to confirm


def test_pods_present_before_a_decision_do_not_replace_its_reservation() -> None:
    cache = SchedulerCache(clock=FakeClock())
    cache.update_cluster(cluster("c", [node("n0"), node("n1")]))
    cache.add_pod("c", PodInfo("old", "n0", {GPU_RESOURCE: 8}, owner="ns/w"))  # from an earlier decision
    outcome = Scheduler().schedule(cache.snapshot(), workload({GPU_RESOURCE: 8}, key="ns/w"))
    assert isinstance(outcome, ScheduleResult) and outcome.assignments[0].node == "n1"
    cache.assume("ns/w", outcome.assignments)  # owner defaults to the key
    cache.remove_pod("c", "old")
    cache.add_pod("c", PodInfo("old", "n0", {GPU_RESOURCE: 8}, owner="ns/w"))  # e.g. a relist
    assert cache.assumed_pods("ns/w") == 1 and _free(cache, "n1") == 0
    cache.forget("ns/w")
    cache.add_pod("c", PodInfo("new", "n1", {GPU_RESOURCE: 8}, owner="ns/w"))  # no reservation: no effect
    assert _free(cache, "n1") == 0 and _free(cache, "n0") == 0


def test_snapshots_are_immutable_and_cheap() -> None:
    cache = make_cache()
    first = cache.snapshot()
    assert cache.snapshot() is first  # nothing changed: same object
    before = first.clusters["c"]
    cache.upsert_node("c", node("n2"))
    second = cache.snapshot()
    assert (
        second is not first and "n2" not in first.clusters["c"].nodes and "n2" in second.clusters["c"].nodes
    )
    assert second.clusters["c"].version > before.version
    assert second.clusters["c"].nodes["n0"] is before.nodes["n0"]  # untouched nodes are shared
    cache.remove_node("c", "n2")
    cache.remove_node("c", "n2")
    assert "n2" not in cache.snapshot().clusters["c"].nodes
    cache.remove_cluster("c")
    assert cache.snapshot().clusters == {}
    assert cache.stats()["clusters"] == 0


def test_update_cluster_keeps_reservations() -> None:
    cache = make_cache()
    outcome = Scheduler().schedule(cache.snapshot(), workload({GPU_RESOURCE: 8}))
    assert isinstance(outcome, ScheduleResult)
    cache.assume("w", outcome.assignments)
    cache.update_cluster(cluster("c", [node("n0"), node("n1", gpus=4)], labels={"new": "label"}))
    snap = cache.snapshot()
    assert snap.clusters["c"].labels == {"new": "label"}
    assert snap.clusters["c"].nodes["n0"].free[GPU_RESOURCE] == 0


_REQUESTS = [
    {"cpu": 2000, GPU_RESOURCE: 1},
    {"cpu": 1000, GPU_MILLI_RESOURCE: 250},
    {"cpu": 500, GPU_MILLI_RESOURCE: 750},
    {"cpu": 4000, "memory": 1 << 30},
]
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["assume", "assume2", "forget", "add", "remove", "resize"]),
        st.integers(0, 3),
        st.sampled_from(range(len(_REQUESTS))),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(_OPS)
def test_effective_nodes_equal_a_fold_from_scratch(ops: list[tuple[str, int, int]]) -> None:
    """A reservation appended is folded onto the node's previous effective state; that equals
    the fold of the base node, its pods and every reservation from scratch after any events."""
    cache = SchedulerCache(clock=FakeClock())
    cache.update_cluster(cluster("c", [node(f"n{i}", gpus=(8, 4, 2, 1)[i]) for i in range(4)]))
    keys: list[str] = []
    pods: list[str] = []
    for i, (op, n, r) in enumerate(ops):
        req = dict(_REQUESTS[r])
        if op.startswith("assume"):
            keys.append(f"w{i}")
            count = 2 if op == "assume2" else 1  # two pods of one decision on one node
            cache.assume(f"w{i}", [PodAssignment("c", f"n{n}", "main", req) for _ in range(count)])
        elif op == "forget" and keys:
            cache.forget(keys.pop(n % len(keys)))
        elif op == "add":
            pods.append(f"p{i}")
            cache.add_pod("c", PodInfo(f"p{i}", f"n{n}", req))
        elif op == "remove" and pods:
            cache.remove_pod("c", pods.pop(n % len(pods)))
        elif op == "resize":
            old = cache.cluster("c").nodes[f"n{n}"]
            cache.upsert_node(
                "c", replace(old, allocatable={**old.allocatable, "cpu": 16_000}, gpu_free=None)
            )
        entry = cache._entries["c"]
        for name, got in cache.cluster("c").nodes.items():
            want = cache._node_effective(entry, name)
            assert (got.used, got.devices, got.free) == (want.used, want.devices, want.free)


def test_published_cluster_keeps_every_metadata_field() -> None:
    """The cache builds each published ClusterInfo field by field: a field it does not know
    would be dropped, so the field list is pinned here."""
    managed = {"nodes", "version", "static_memo", "changes", "summary"}
    metadata = {
        "name": "c",
        "labels": {"tier": "gpu"},
        "taints": (Taint("dedicated", "ml"),),
        "ready": False,
        "api_enablements": frozenset({"apps/v1/Deployment"}),
        "provider": "aws",
        "region": "eu-west-1",
        "zone": "eu-west-1a",
    }
    assert {f.name for f in fields(ClusterInfo) if f.init} == managed | set(metadata)
    cache = SchedulerCache()
    cache.update_cluster(ClusterInfo(nodes={"n0": node("n0")}, **metadata))  # type: ignore[arg-type]
    cache.assume("w", [PodAssignment("c", "n0", "main", {"cpu": 1000})])
    published = cache.cluster("c")
    assert {name: getattr(published, name) for name in metadata} == metadata
