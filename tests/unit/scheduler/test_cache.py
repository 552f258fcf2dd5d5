from __future__ import annotations

from sched_fixtures import cluster, node, workload

from flotilla.scheduler import GPU_RESOURCE, PodInfo, Scheduler, SchedulerCache, ScheduleResult, Unschedulable


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
