"""The controllers' series, driven through the runtime against in-memory API servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes.client import ApiException
from prometheus_client import REGISTRY
from test_runtime import NS, Fleet, deployment, policy

from flotilla.metrics import PROFILE
from flotilla.scheduler import Scheduler, new_in_tree_registry
from flotilla.scheduler.framework import CycleState, Status
from flotilla.scheduler.runtime import Framework
from flotilla.scheduler.snapshot import ClusterInfo
from flotilla.scheduler.workload import Workload


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll: a queue retrying with backoff never settles meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def events(fleet: Fleet) -> list[tuple[str, str, str, str]]:
    """Every Event the controllers post, as ``(kind/name, type, reason, message)``."""
    posted: list[tuple[str, str, str, str]] = []
    assert fleet.rt is not None

    def emit(obj: Any, type_: str, reason: str, message: str) -> None:
        posted.append((f"{obj['kind']}/{obj['metadata']['name']}", type_, reason, message))

    fleet.rt.scheduling.emit = fleet.rt.propagation.emit = emit
    return posted


async def test_waiting_then_placed_then_applied(fleet: Fleet) -> None:
    """Too big for member a (16 GPUs): pending NoClusterFits, rejected by NodeResourcesFit; scaled
    down it is placed (an attempt, a first placement's wait) and applied (a member request)."""
    fleet.hub.apply(policy("p", clusters=["a"]), "test")
    big = deployment("big", 20)
    big["metadata"]["creationTimestamp"] = "2020-01-01T00:00:00Z"  # waited for years, say
    fleet.hub.apply(big, "test")
    before = {
        "unschedulable": value("flotilla_schedule_attempts_total", result="unschedulable", profile=PROFILE),
        "scheduled": value("flotilla_schedule_attempts_total", result="scheduled", profile=PROFILE),
        "waits": value("flotilla_admission_wait_time_seconds_count"),
        "applied": value("flotilla_propagation_attempts_total", cluster="a", result="applied"),
        "applies": value("flotilla_member_api_request_duration_seconds_count", cluster="a", verb="apply"),
        "algorithm": value("flotilla_scheduling_algorithm_duration_seconds_count", profile=PROFILE),
    }
    rt = fleet.runtime()
    posted = events(fleet)
    for obj in fleet.hub.objects.values():
        if obj["kind"] == "Deployment":
            rt.on_template(None, obj)
    await rt.preload()
    await rt.start()
    await fleet.settle()
    assert value("flotilla_pending_workloads", reason="NoClusterFits") == 1
    assert value("flotilla_unschedulable_workloads", plugin="NodeResourcesFit", profile=PROFILE) == 1
    assert (value("flotilla_oldest_pending_workload_seconds") or 0) > 0
    assert value("flotilla_schedule_attempts_total", result="unschedulable", profile=PROFILE) == (
        before["unschedulable"] + 1
    )
    assert [e[2] for e in posted] == ["FailedScheduling"] and posted[0][0] == "Deployment/big"
    assert "insufficient nvidia.com/gpu" in posted[0][3] or "fit" in posted[0][3], posted

    fleet.hub.apply(deployment("big", 10) | {"metadata": big["metadata"]}, "test")
    await fleet.settle()
    assert fleet.replicas("big") == {"a": 10}
    assert value("flotilla_pending_workloads", reason="NoClusterFits") == 0
    assert value("flotilla_unschedulable_workloads", plugin="NodeResourcesFit", profile=PROFILE) == 0
    assert value("flotilla_oldest_pending_workload_seconds") == 0
    assert (
        value("flotilla_schedule_attempts_total", result="scheduled", profile=PROFILE)
        == before["scheduled"] + 1
    )
    assert (
        value("flotilla_scheduling_algorithm_duration_seconds_count", profile=PROFILE)
        >= before["algorithm"] + 2
    )
    assert value("flotilla_admission_wait_time_seconds_count") == before["waits"] + 1
    assert value("flotilla_admission_wait_time_seconds_bucket", le="86400.0") == before["waits"]  # > a day
    assert (
        value("flotilla_propagation_attempts_total", cluster="a", result="applied") == before["applied"] + 1
    )
    assert (
        value("flotilla_member_api_request_duration_seconds_count", cluster="a", verb="apply")
        > before["applies"]
    )
    assert [e[2] for e in posted] == ["FailedScheduling", "Scheduled", "Applied"], posted
    assert posted[2][3] == "applied to a"


async def test_an_apply_refused_by_the_member_is_counted_and_told_once(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p", clusters=["b"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    refused = ApiException(status=403, reason="Forbidden")
    fleet.members["b"].fail = lambda verb, obj: (
        refused if verb == "apply" and obj["kind"] == "Deployment" else None
    )
    before = {
        "failed": value("flotilla_propagation_failures_total", cluster="b", reason="Forbidden"),
        "errors": value("flotilla_member_api_errors_total", cluster="b", verb="apply", reason="Forbidden"),
    }
    rt = fleet.runtime()
    posted = events(fleet)
    for obj in fleet.hub.objects.values():
        if obj["kind"] == "Deployment":
            rt.on_template(None, obj)
    await rt.preload()
    await rt.start()
    # Retried with backoff meanwhile: every try counted, the Event posted once.
    failures = partial(value, "flotilla_propagation_failures_total", cluster="b", reason="Forbidden")
    await until(lambda: failures() >= before["failed"] + 3)
    await until(lambda: "(Forbidden)" in str(fleet.binding("web")))
    assert value("flotilla_member_api_errors_total", cluster="b", verb="apply", reason="Forbidden") >= (
        before["errors"] + 1
    )
    failed = [e for e in posted if e[2] == "ApplyFailed"]
    assert len(failed) == 1 and failed[0][3].startswith("b: apply failed (Forbidden)"), posted
    rb = fleet.binding("web")
    assert rb is not None
    applied = next(c for c in rb["status"]["conditions"] if c["type"] == "FullyApplied")
    assert applied["status"] == "False" and "(Forbidden)" in applied["message"]


class BrokenFilter:
    """An out-of-tree Filter plugin with a bug."""

    name = "Broken"

    def filter(self, state: CycleState, workload: Workload, cluster: ClusterInfo) -> Status:
        raise RuntimeError("Broken: list index out of range")


async def test_a_scheduler_error_is_counted_gauged_and_told(fleet: Fleet) -> None:
    """The scheduler raises: an attempt with result error, the workload waits as SchedulerError and
    its template gets one FailedScheduling Event naming the error (retries post no more)."""
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 1), "test")
    errors = value("flotilla_schedule_attempts_total", result="error", profile=PROFILE)
    registry = new_in_tree_registry()
    registry.register(BrokenFilter.name, BrokenFilter)
    rt = fleet.runtime()
    rt.scheduling.scheduler = Scheduler(Framework(registry))
    posted = events(fleet)
    rt.on_template(None, fleet.hub.find("apps/v1", "Deployment", "web", NS) or {})
    await rt.preload()
    await rt.start()
    # Retried with backoff: every try counted, the Event posted once.
    await until(
        lambda: value("flotilla_schedule_attempts_total", result="error", profile=PROFILE) >= errors + 3
    )
    assert value("flotilla_pending_workloads", reason="SchedulerError") == 1
    told = [e for e in posted if e[2] == "FailedScheduling"]
    assert told == [
        ("Deployment/web", "Warning", "FailedScheduling", "scheduler error: Broken: list index out of range")
    ]
    rt.scheduling.scheduler = Scheduler()  # fixed: the next retry places it
    await until(lambda: sum(fleet.replicas("web").values()) == 1, timeout=30)
    assert value("flotilla_pending_workloads", reason="SchedulerError") == 0


async def test_an_invalid_template_is_told_not_retried(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    bad = deployment("bad", 1)
    bad["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "lots"
    fleet.hub.apply(bad, "test")
    rt = fleet.runtime()
    told: list[tuple[str, str]] = []
    rt.detector.emit = lambda obj, _type, reason, message: told.append((reason, message))
    rt.on_template(None, fleet.hub.find("apps/v1", "Deployment", "bad", NS) or {})
    await rt.preload()
    await rt.start()
    await fleet.settle()
    assert told == [("InvalidWorkload", "invalid quantity 'lots'")]
    assert fleet.binding("bad") is None
