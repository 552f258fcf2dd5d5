"""Reserve and Permit extension points: a gang or quota rule is a plugin, not a core branch."""

from __future__ import annotations

from collections import Counter

from sched_fixtures import GiB, cluster, node, snapshot

from flotilla.scheduler import (
    GPU_RESOURCE,
    Component,
    Framework,
    GangSpec,
    Scheduler,
    ScheduleResult,
    Unschedulable,
    Workload,
)
from flotilla.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    PermitPlugin,
    Registry,
    ReservePlugin,
    Status,
)
from flotilla.scheduler.nodefit import PodAssignment
from flotilla.scheduler.plugins import coscheduling, new_in_tree_registry

GPU8 = {"cpu": 8000, "memory": 64 * GiB, GPU_RESOURCE: 8}


class PodsPerCluster:
    """A quota rule as a plugin: at most ``cap`` pods of a workload per cluster."""

    name = "PodsPerCluster"

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.live: Counter[str] = Counter()
        """Reserved minus unreserved pods per cluster, across cycles (must end at 0 on a reject)."""

    def reserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> Status:
        counts: Counter[str] = state.setdefault(self.name, Counter())
        if counts[pod.cluster] >= self.cap:
            return Status.unschedulable(f"more than {self.cap} pods on cluster {pod.cluster}")
        counts[pod.cluster] += 1
        self.live[pod.cluster] += 1
        return SUCCESS

    def unreserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> None:
        state[self.name][pod.cluster] -= 1
        self.live[pod.cluster] -= 1


class AtMost:
    """A Permit rule: reject a workload once more than ``limit`` of its pods are reserved."""

    name = "AtMost"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reserved = 0

    def reserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> Status:
        self.reserved += 1
        return SUCCESS

    def unreserve(self, state: CycleState, workload: Workload, pod: PodAssignment) -> None:
        self.reserved -= 1

    def permit(self, state: CycleState, workload: Workload) -> Status:
        if self.reserved > self.limit:
            return Status.unschedulable(f"more than {self.limit} pods")
        return SUCCESS


def scheduler_with(*plugins: object, disable: str = "", observer: object = None) -> Scheduler:
    registry = new_in_tree_registry()
    extra = Registry()
    for plugin in plugins:
        extra.register(plugin.name, lambda p=plugin: p)  # type: ignore[attr-defined, misc]
    registry.merge(extra)
    spec = f"*,-{disable}" if disable else "*"
    return Scheduler(Framework(registry, spec, observer=observer))  # type: ignore[arg-type]


def elastic(workers: int, *, need: int = 3, multi: bool = False) -> Workload:
    return Workload(
        "ns/elastic",
        (Component("w", workers, GPU8),),
        gang=GangSpec(min_member=need, allow_multi_cluster=multi),
    )


def per_cluster(outcome: ScheduleResult | Unschedulable) -> dict[str, int]:
    assert isinstance(outcome, ScheduleResult), outcome.message
    return {t.name: t.replicas for t in outcome.targets}


def test_plugins_are_found_at_the_new_extension_points() -> None:
    fw = Framework()
    assert [p.name for p in fw.reservers] == [coscheduling.NAME]
    assert [p.name for p in fw.permitters] == [coscheduling.NAME]
    assert isinstance(coscheduling.new(), ReservePlugin) and isinstance(coscheduling.new(), PermitPlugin)


def test_coscheduling_permit_waits_for_the_gangs_requirement_per_role() -> None:
    plugin = coscheduling.new()
    job = Workload(
        "ns/j",
        (Component("master", 1, GPU8), Component("worker", 4, GPU8)),
        gang=GangSpec(min_member=3, min_task_member={"master": 1}),
    )
    state = CycleState()
    wait = plugin.permit(state, job)
    assert wait.code is Code.WAIT and wait.reasons == (coscheduling.SINGLE,)

    def pod(role: str) -> PodAssignment:
        return PodAssignment("c", "n", role, {})

    worker1, worker2, master = pod("worker"), pod("worker"), pod("master")
    for p in (worker1, worker2):
        assert plugin.reserve(state, job, p).is_success
    assert plugin.permit(state, job).code is Code.WAIT  # 2 workers, no master yet
    plugin.reserve(state, job, master)
    assert plugin.permit(state, job).is_success
    plugin.unreserve(state, job, worker2)
    assert plugin.permit(state, job).code is Code.WAIT
    assert plugin.permit(CycleState(), Workload("ns/plain", (Component("w", 1, GPU8),))).is_success


def test_a_reserve_plugin_caps_the_extras_and_the_refused_pods_free_their_node() -> None:
    cap = PodsPerCluster(4)
    sched = scheduler_with(cap)
    c = cluster("c", [node(f"n{i}") for i in range(6)])
    outcome = sched.schedule(snapshot(c), elastic(6))
    assert per_cluster(outcome) == {"c": 4}  # 3 required + 1 extra; 2 extras refused
    assert len({a.node for a in outcome.assignments}) == 4
    # A refused pod was taken off its node again: a multi-cluster gang's refused pods go to the
    # next cluster, onto the very nodes a refused pod had been bound on first.
    other = cluster("d", [node("d0"), node("d1")])
    outcome = sched.schedule(snapshot(c, other), elastic(6, multi=True))
    assert per_cluster(outcome) == {"c": 4, "d": 2}
    assert sum(cap.live.values()) == 4 + 6  # two decisions' pods stay reserved (no rejection)


def test_a_reserve_refusal_before_the_gang_stands_rejects_it_whole_and_unreserves_every_pod() -> None:
    cap = PodsPerCluster(2)
    sched = scheduler_with(cap)
    outcome = sched.schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(6)])), elastic(6))
    assert isinstance(outcome, Unschedulable)
    assert outcome.diagnosis.extra_reasons == [coscheduling.SINGLE]
    assert outcome.diagnosis.plugins == ["PodsPerCluster"]  # who kept the third pod out
    assert sum(cap.live.values()) == 0


def test_a_permit_rejection_rejects_the_workload_and_unreserves_every_pod() -> None:
    limit = AtMost(4)
    sched = scheduler_with(limit)
    outcome = sched.schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(6)])), elastic(6))
    assert isinstance(outcome, Unschedulable)
    assert outcome.diagnosis.extra_reasons == ["more than 4 pods"]
    assert outcome.diagnosis.plugins == ["AtMost"]
    assert limit.reserved == 0
    assert sched.schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(4)])), elastic(6)).ok


def test_the_gang_rule_is_the_coscheduling_plugins() -> None:
    # Two clusters with one free node each; a multi-cluster gang of 3 fits on neither alone nor
    # together. With Coscheduling it is rejected whole; without it, nothing holds the pods back.
    a, b = cluster("a", [node("a0")]), cluster("b", [node("b0")])
    job = elastic(3, multi=True)
    outcome = Scheduler().schedule(snapshot(a, b), job)
    assert isinstance(outcome, Unschedulable)
    assert outcome.diagnosis.extra_reasons == [coscheduling.MULTI]
    assert outcome.diagnosis.plugins == ["NodeResourcesFit"]
    without = scheduler_with(disable=coscheduling.NAME).schedule(snapshot(a, b), job)
    assert per_cluster(without) == {"a": 1, "b": 1}


def test_reserve_unreserve_and_permit_are_timed_for_the_observer() -> None:
    calls: Counter[tuple[str, str]] = Counter()

    def observe(point: str, plugin: str, seconds: float) -> None:
        assert seconds >= 0
        calls[(point, plugin)] += 1

    sched = scheduler_with(AtMost(2), observer=observe)
    outcome = sched.schedule(snapshot(cluster("c", [node(f"n{i}") for i in range(4)])), elastic(4))
    assert isinstance(outcome, Unschedulable)
    assert calls[("Reserve", coscheduling.NAME)] == 4 and calls[("Reserve", "AtMost")] == 4
    assert calls[("Permit", coscheduling.NAME)] == 1  # every pod fit: asked once, at the end
    assert calls[("Permit", "AtMost")] == 1
    assert calls[("Unreserve", "AtMost")] == 4 and calls[("Unreserve", coscheduling.NAME)] == 4
