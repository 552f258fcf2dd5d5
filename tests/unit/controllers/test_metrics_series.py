"""flotilla.metrics: per-member series and their removal, the scheduler observer, member clients."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiException, Configuration
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from flotilla import kube, metrics
from flotilla.controllers.client import KubeClient, MeteredClient, failure_reason
from flotilla.scheduler import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    ClusterInfo,
    Component,
    NodeInfo,
    Placement,
    Scheduler,
    Snapshot,
    Workload,
)
from flotilla.scheduler.runtime import Framework


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def labelled(metric: MetricWrapperBase, cluster: str) -> list[tuple[str, ...]]:
    index = metric._labelnames.index("cluster")
    return [v for v in metric._metrics if v[index] == cluster]


def test_every_series_labelled_by_cluster_is_forgotten_with_its_member() -> None:
    by_cluster = [
        m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase) and "cluster" in m._labelnames
    ]
    assert set(map(id, by_cluster)) == set(map(id, metrics.CLUSTER_SERIES)), "add it to CLUSTER_SERIES"
    for metric in metrics.CLUSTER_SERIES:
        for cluster in ("gone", "kept"):
            child = metric.labels(**{n: cluster if n == "cluster" else "x" for n in metric._labelnames})
            if hasattr(child, "observe"):
                child.observe(1.0)
            else:
                child.inc()
    metrics.forget_cluster("gone")
    for metric in metrics.CLUSTER_SERIES:
        assert labelled(metric, "gone") == [], metric._name
        assert labelled(metric, "kept"), metric._name
    metrics.forget_cluster("kept")


def test_gpu_gauges_by_model_follow_the_member() -> None:
    metrics.set_cluster_gpus(
        "m1", [{"model": "H100", "total": 16, "free": 5}, {"model": "L4", "total": 2, "free": 2}]
    )
    assert value("flotilla_cluster_gpu_allocatable", cluster="m1", gpu_model="H100") == 16
    assert value("flotilla_cluster_gpu_allocated", cluster="m1", gpu_model="H100") == 11
    assert value("flotilla_cluster_gpu_free", cluster="m1", gpu_model="H100") == 5
    assert value("flotilla_cluster_gpu_allocated", cluster="m1", gpu_model="L4") == 0
    metrics.set_cluster_gpus("m1", [{"model": "H100", "total": 8, "free": 8}])  # the L4 nodes left
    assert value("flotilla_cluster_gpu_allocatable", cluster="m1", gpu_model="H100") == 8
    for name in ("allocatable", "allocated", "free"):
        assert value(f"flotilla_cluster_gpu_{name}", cluster="m1", gpu_model="L4") is None
    metrics.forget_cluster("m1")
    assert value("flotilla_cluster_gpu_allocatable", cluster="m1", gpu_model="H100") is None


def _fleet() -> Snapshot:
    def nodes(prefix: str, n: int, gpus: int) -> dict[str, NodeInfo]:
        alloc = {"cpu": 64_000, "memory": 1 << 39, "pods": 110, GPU_RESOURCE: gpus}
        return {
            f"{prefix}{i}": NodeInfo(f"{prefix}{i}", alloc, {}, {GPU_PRODUCT_LABEL: "H100"}) for i in range(n)
        }

    return Snapshot.of([ClusterInfo("x", nodes("x", 2, 8)), ClusterInfo("y", nodes("y", 4, 4))])


def test_the_observer_times_plugins_on_one_attempt_in_ten() -> None:
    observer = metrics.SchedulerObserver(profile="test-profile")
    framework = Framework()
    scheduler = Scheduler(framework)
    snap = _fleet()
    placement = Placement.from_dict({"clusterAffinity": {"clusterNames": ["x", "y"]}})
    wl = Workload("ns/w", (Component("main", 3, {GPU_RESOURCE: 1}),), placement)

    def filter_calls() -> float:
        return (
            value(
                "flotilla_plugin_execution_duration_seconds_count",
                plugin="ClusterAffinity",
                extension_point="Filter",
                profile="test-profile",
            )
            or 0.0
        )

    sampled = []
    for _ in range(20):
        on = observer.begin()
        sampled.append(on)
        framework.observer = observer.record if on else None
        assert scheduler.schedule(snap, wl).ok
        framework.observer = None
        observer.end()
    assert sampled == [True] + [False] * 9 + [True] + [False] * 9
    assert filter_calls() == 2  # two sampled attempts: the plugin's Filter calls summed per attempt
    points = value(
        "flotilla_framework_extension_point_duration_seconds_count",
        extension_point="PreFilter",
        profile="test-profile",
    )
    assert points == 2  # one observation per sampled attempt, however many plugins ran
    assert (
        value(
            "flotilla_framework_extension_point_duration_seconds_sum",
            extension_point="Filter",
            profile="test-profile",
        )
        or 0
    ) > 0


def test_failure_reasons() -> None:
    assert failure_reason(ApiException(status=409)) == "Conflict"
    assert failure_reason(ApiException(status=403)) == "Forbidden"
    assert failure_reason(ApiException(status=422)) == "Invalid"
    assert failure_reason(ApiException(status=503)) == "ServerError"
    assert failure_reason(ApiException(status=0)) == "Error"
    assert failure_reason(LookupError("no such kind")) == "NotServed"
    assert failure_reason(ConnectionRefusedError()) == "Unreachable"
    assert failure_reason(TimeoutError()) == "Timeout"
    assert failure_reason(KeyError("x")) == "NotServed"  # (a LookupError)
    assert failure_reason(RuntimeError("x")) == "Error"


def test_member_requests_are_timed_and_errors_counted_by_reason() -> None:
    """A member whose API server does not answer (nothing listens on the port): the refused
    connection arrives as urllib3's MaxRetryError and counts as Unreachable."""
    with socket.socket() as sock:  # a port nothing listens on (bound, then closed)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = Configuration()
    cfg.host = f"https://127.0.0.1:{port}"
    cfg.verify_ssl = False
    client = MeteredClient(KubeClient(ApiClient(cfg)), "down")
    kube._discovery[(id(client.inner.api), "apps/v1")] = {"Deployment": ("deployments", True)}  # type: ignore[attr-defined]
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "w", "namespace": "n"},
    }
    with pytest.raises(Exception) as caught:
        client.apply(obj, "test")
    assert failure_reason(caught.value) == "Unreachable"
    assert value("flotilla_member_api_errors_total", cluster="down", verb="apply", reason="Unreachable") == 1
    assert value("flotilla_member_api_request_duration_seconds_count", cluster="down", verb="apply") == 1
    metrics.forget_cluster("down")
