"""A PodGroup's ``minResources``: the Coscheduling plugin filters out a cluster with less free."""

from __future__ import annotations

from dataclasses import replace

from sched_fixtures import GiB, cluster, node, snapshot

from flotilla.scheduler import (
    GPU_MILLI_RESOURCE,
    GPU_RESOURCE,
    Component,
    Framework,
    GangSpec,
    Scheduler,
    SchedulerCache,
    ScheduleResult,
    Unschedulable,
    Workload,
    schedule,
)
from flotilla.scheduler.plugins import coscheduling

GPU1 = {"cpu": 1000, "memory": 8 * GiB, GPU_RESOURCE: 1}


def gang(min_resources: dict[str, int], *, multi: bool = False, replicas: int = 2) -> Workload:
    return Workload(
        "ns/g",
        (Component("w", replicas, GPU1),),
        gang=GangSpec(min_member=replicas, allow_multi_cluster=multi, min_resources=min_resources),
    )


def test_a_cluster_with_less_free_than_min_resources_is_filtered_out_with_a_reason() -> None:
    small = cluster("small", [node("s0", gpus=4)])  # room for the 2 pods, not for 6 GPUs free
    big = cluster("big", [node("b0", gpus=4), node("b1", gpus=4, used_gpus=2)])  # 6 free
    job = gang({GPU_RESOURCE: 6, "cpu": 2000})
    outcome = schedule(snapshot(small, big), job)
    assert isinstance(outcome, ScheduleResult), outcome.message
    assert [t.name for t in outcome.targets] == ["big"]
    status = outcome.explanation.statuses["small"]
    assert status.plugin == coscheduling.NAME
    assert status.reasons == ("cluster(s) had less free than the PodGroup's minResources (nvidia.com/gpu)",)
    failed = schedule(snapshot(small), job)
    assert isinstance(failed, Unschedulable)
    assert failed.message == (
        "0/1 clusters are available: 1 cluster(s) had less free than the PodGroup's minResources "
        "(nvidia.com/gpu)."
    )


def test_every_short_resource_is_named_and_unknown_resources_count_as_none_free() -> None:
    c = cluster("c", [node("n0", gpus=8, cpu=4000)])
    outcome = schedule(snapshot(c), gang({"cpu": 8000, GPU_RESOURCE: 1, "example.com/fpga": 1}))
    assert isinstance(outcome, Unschedulable)
    assert "minResources (cpu, example.com/fpga)" in outcome.message


def test_only_ready_nodes_count_and_gpus_count_whole_free_devices() -> None:
    c = cluster(
        "c",
        [
            node("half", gpus=2, gpu_free=(500, 1000)),  # one whole free GPU, 1.5 GPUs of share
            replace(node("down", gpus=8), ready=False),
        ],
    )
    assert coscheduling.cluster_free(c)[GPU_RESOURCE] == 1
    assert coscheduling.cluster_free(c)[GPU_MILLI_RESOURCE] == 1500
    assert isinstance(schedule(snapshot(c), gang({GPU_RESOURCE: 2}, replicas=1)), Unschedulable)
    assert schedule(snapshot(c), gang({GPU_MILLI_RESOURCE: 1500}, replicas=1)).ok
    assert isinstance(schedule(snapshot(c), gang({GPU_MILLI_RESOURCE: 1600}, replicas=1)), Unschedulable)


def test_the_cache_summary_and_a_plain_cluster_give_the_same_free_totals() -> None:
    nodes = [node(f"n{i}", gpus=8, used_gpus=i) for i in range(5)]
    plain = cluster("c", nodes)
    cache = SchedulerCache()
    cache.update_cluster(plain)
    cached = cache.snapshot().clusters["c"]
    assert cached.summary is not None
    assert coscheduling.cluster_free(cached) == coscheduling.cluster_free(cluster("c", nodes))
    assert coscheduling.cluster_free(cached)[GPU_RESOURCE] == 8 + 7 + 6 + 5 + 4


def test_a_multi_cluster_gang_needs_it_of_the_clusters_together() -> None:
    a = cluster("a", [node("a0", gpus=4)])
    b = cluster("b", [node("b0", gpus=4)])
    job = gang({GPU_RESOURCE: 6}, multi=True)
    outcome = schedule(snapshot(a, b), job)  # neither alone has 6 free, together they do
    assert outcome.ok
    short = schedule(snapshot(a, b), gang({GPU_RESOURCE: 9}, multi=True))
    assert isinstance(short, Unschedulable)
    assert short.diagnosis.cluster_statuses["a"].plugin == coscheduling.NAME
    assert "cluster(s) together had less free than the PodGroup's minResources (nvidia.com/gpu)" in (
        short.message
    )


def test_without_min_resources_or_a_gang_the_plugin_skips_itself() -> None:
    c = cluster("c", [node("n0", gpus=1)])
    assert schedule(snapshot(c), gang({})).ok is False  # 2 GPUs of pods on a 1-GPU node: node fit says no
    solo = Workload("ns/s", (Component("w", 1, GPU1),))
    assert schedule(snapshot(c), solo).ok
    # Disabled, a gang's minResources is not read.
    no_plugin = Scheduler(Framework(plugins=f"*,-{coscheduling.NAME}"))
    assert no_plugin.schedule(snapshot(c), gang({GPU_RESOURCE: 4}, replicas=1)).ok
    assert not schedule(snapshot(c), gang({GPU_RESOURCE: 4}, replicas=1)).ok


def test_gang_spec_round_trips_min_resources() -> None:
    spec = GangSpec(2, min_resources={"cpu": 3000, GPU_RESOURCE: 2})
    assert spec.to_dict()["minResources"] == {"cpu": 3000, GPU_RESOURCE: 2}
    assert GangSpec.from_dict(spec.to_dict()) == spec
    assert "minResources" not in GangSpec(2).to_dict()
