"""GPU device accounting (``take_devices``): the one function the placer, the cache and nodes
described by counts share."""

from __future__ import annotations

from flotilla.scheduler import GPU_MILLI_RESOURCE, GPU_RESOURCE, Component, NodeInfo, SchedulerCache
from flotilla.scheduler.cache import PodInfo
from flotilla.scheduler.nodefit import NodeState
from flotilla.scheduler.snapshot import ClusterInfo, take_devices


def test_whole_gpus_take_preferred_free_devices_then_the_lowest_free_indexes() -> None:
    devices = [1000, 0, 1000, 1000, 500]
    assert take_devices(devices, whole=2, preferred=(3, 1)) == (3, 0)
    assert devices == [0, 0, 1000, 0, 500]
    assert take_devices(devices, whole=3) == (2,)  # fewer free than asked: takes what there is
    assert devices == [0, 0, 0, 0, 500]


def test_a_share_takes_a_preferred_device_with_room_else_the_best_fit() -> None:
    devices = [1000, 300, 600, 600]
    assert take_devices(devices, milli=250, preferred=(0,)) == (0,)
    assert devices == [750, 300, 600, 600]
    assert take_devices(devices, milli=500, preferred=(1,)) == (2,)  # 1 too small: best fit, lowest index
    assert devices == [750, 300, 100, 600]
    assert take_devices(devices, milli=300) == (1,)
    assert devices == [750, 0, 100, 600]


def test_a_share_no_device_holds_charges_the_freest_device_down_to_zero() -> None:
    devices = [200, 400, 400]
    assert take_devices(devices, milli=700) == (1,)
    assert devices == [200, 0, 400]
    assert take_devices([], milli=100) == ()
    assert take_devices([1000], whole=0, milli=0) == ()


def test_a_node_described_by_counts_puts_whole_gpus_first_then_shares_on_the_freest_devices() -> None:
    node = NodeInfo("n", {GPU_RESOURCE: 4}, {GPU_RESOURCE: 1, GPU_MILLI_RESOURCE: 1300})
    assert node.devices == (0, 0, 700, 1000)
    assert node.free[GPU_RESOURCE] == 1 and node.free[GPU_MILLI_RESOURCE] == 1700


def test_placer_and_cache_account_a_pod_on_the_same_devices() -> None:
    shape = Component("c", 1, {"cpu": 100, GPU_MILLI_RESOURCE: 400}).shape
    base = NodeInfo("n", {"cpu": 8000, GPU_RESOURCE: 3}, gpu_free=(1000, 500, 450))
    state = NodeState(base)
    assert state.bind(shape) == (2,)  # best fit
    assert state.bind(shape, device=0) == (0,)
    assert state.devices == [600, 500, 50]
    assert state.free[GPU_RESOURCE] == 0 and state.free[GPU_MILLI_RESOURCE] == 1150
    cache = SchedulerCache()
    cache.update_cluster(ClusterInfo("c", {"n": base}))
    cache.add_pod("c", PodInfo("a", "n", {"cpu": 100, GPU_MILLI_RESOURCE: 400}))
    cache.add_pod("c", PodInfo("b", "n", {"cpu": 100, GPU_MILLI_RESOURCE: 400}, gpu_devices=(0,)))
    assert list(cache.cluster("c").nodes["n"].devices) == state.devices


def test_unplacing_a_pod_gives_its_node_back_exactly() -> None:
    from flotilla.scheduler import Framework
    from flotilla.scheduler.snapshot import release_devices

    base = NodeInfo("n", {"cpu": 8000, "pods": 10, GPU_RESOURCE: 4}, gpu_free=(1000, 1000, 600, 1000))
    placer = Framework().engine.placer(ClusterInfo("c", {"n": base}))
    for requests in ({"cpu": 100, GPU_RESOURCE: 1}, {"cpu": 100, GPU_MILLI_RESOURCE: 500}):
        shape = Component("c", 1, requests).shape
        before = placer.available(shape)
        first = placer.place(shape, "c")
        second = placer.place(shape, "c")
        assert first is not None and second is not None
        placer.unplace(first)
        placer.unplace(second)
        assert placer.assignments == []
        state = placer.states["n"]
        assert state.free == dict(base.free) and state.devices == list(base.devices)
        assert placer.available(shape) == before
        assert placer.place(shape, "c") is not None  # the ranking knows the node again
        placer.unplace(placer.assignments[0])
    devices = [0, 1000, 300]
    release_devices(devices, (0,), 1000)
    release_devices(devices, (2,), 900)  # never above a whole device
    assert devices == [1000, 1000, 1000]
