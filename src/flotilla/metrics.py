"""Prometheus metrics (namespace ``flotilla``), named after kube-scheduler's and Kueue's.

Never labelled by workload name: labels are low-cardinality (result, cluster, GPU model).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

_BUCKETS = tuple(0.0001 * 2**i for i in range(18))  # 0.1 ms .. ~13 s

SCHEDULE_ATTEMPTS = Counter(
    "flotilla_schedule_attempts_total",
    "Scheduling attempts by result (scheduled | unschedulable | error).",
    ["result"],
)
SCHEDULING_DURATION = Histogram(
    "flotilla_scheduling_attempt_duration_seconds",
    "Time of one scheduling attempt (snapshot, filter, score, divide, reserve).",
    ["result"],
    buckets=_BUCKETS,
)
PENDING = Gauge("flotilla_pending_workloads", "Workloads waiting for capacity (unschedulable).")
DISPATCHED = Counter(
    "flotilla_workloads_dispatched_total", "Workload copies applied to member clusters.", ["cluster"]
)
PROPAGATION = Histogram(
    "flotilla_propagation_duration_seconds",
    "Time to apply one workload copy (with its dependencies) to a member cluster.",
    buckets=_BUCKETS,
)
CLUSTER_READY = Gauge("flotilla_cluster_ready", "1 when the member cluster is Ready.", ["cluster"])
CLUSTER_GPUS = Gauge(
    "flotilla_cluster_gpu_allocatable", "Allocatable GPUs per member and GPU model.", ["cluster", "gpu_model"]
)
CLUSTER_GPUS_FREE = Gauge(
    "flotilla_cluster_gpu_free", "Free GPUs per member and GPU model.", ["cluster", "gpu_model"]
)
BUILD_INFO = Info("flotilla_build", "Flotilla version.")


def observe_schedule(ok: bool, seconds: float) -> None:
    result = "scheduled" if ok else "unschedulable"
    SCHEDULE_ATTEMPTS.labels(result=result).inc()
    SCHEDULING_DURATION.labels(result=result).observe(seconds)
