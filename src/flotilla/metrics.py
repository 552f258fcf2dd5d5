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
CLUSTER_PROBE_FAILURES = Counter(
    "flotilla_cluster_probe_failures_total",
    "Failed health probes of a member cluster by reason (Unreachable | APIServerNotReady | ...).",
    ["cluster", "reason"],
)
CLUSTER_TAINTS_ADDED = Counter(
    "flotilla_cluster_taints_added_total",
    "Automatic taints added to member clusters, by taint key and effect.",
    ["cluster", "key", "effect"],
)
FAILOVERS = Counter(
    "flotilla_failovers_total",
    "Workloads evicted from a member cluster and placed elsewhere, by cluster left and reason "
    "(ClusterUnreachable | ClusterNotReady | TaintUntolerated).",
    ["cluster", "reason"],
)
FAILOVER_DURATION = Histogram(
    "flotilla_failover_duration_seconds",
    "From the moment a workload had to leave a cluster (the NoExecute taint's timeAdded, plus the "
    "workload's tolerationSeconds) to its replacement applied on the new clusters.",
    buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600),
)
FAILOVER_WAITING = Gauge(
    "flotilla_failover_waiting_workloads",
    "Workloads due for eviction that wait: for the eviction rate limit, or for room elsewhere.",
    ["reason"],
)
CLUSTER_SERIES = (
    CLUSTER_READY,
    CLUSTER_GPUS,
    CLUSTER_GPUS_FREE,
    CLUSTER_PROBE_FAILURES,
    CLUSTER_TAINTS_ADDED,
    FAILOVERS,
)
"""Every series labelled by member cluster: see :func:`forget_cluster`."""


def forget_cluster(name: str) -> None:
    """Drop every series of a member cluster (it was removed), so none lingers with a stale value."""
    for metric in CLUSTER_SERIES:
        index = metric._labelnames.index("cluster")
        for values in list(metric._metrics):  # private, but stable across prometheus_client versions
            if values[index] == name:
                metric.remove(*values)


BUILD_INFO = Info("flotilla_build", "Flotilla version.")


def observe_schedule(ok: bool, seconds: float) -> None:
    result = "scheduled" if ok else "unschedulable"
    SCHEDULE_ATTEMPTS.labels(result=result).inc()
    SCHEDULING_DURATION.labels(result=result).observe(seconds)


# Work queues of the controllers, named like controller-runtime's (``workqueue_*``).
WORKQUEUE_DEPTH = Gauge("flotilla_workqueue_depth", "Keys waiting in a controller's work queue.", ["name"])
WORKQUEUE_ADDS = Counter("flotilla_workqueue_adds_total", "Keys added to a work queue.", ["name"])
WORKQUEUE_RETRIES = Counter(
    "flotilla_workqueue_retries_total", "Keys re-queued after a failure (with backoff).", ["name"]
)
WORKQUEUE_WORK_DURATION = Histogram(
    "flotilla_workqueue_work_duration_seconds",
    "Time a controller took to handle one key.",
    ["name"],
    buckets=_BUCKETS,
)
HUB_WRITES = Counter(
    "flotilla_hub_writes_total",
    "Writes to the hub API server by controller and kind.",
    ["controller", "kind"],
)
MEMBER_WATCH_EVENTS = Counter(
    "flotilla_member_watch_events_total", "Watch events of propagated copies by member.", ["cluster"]
)
LEADER = Gauge("flotilla_leader", "1 while this replica is the active (leader) operator.")

# FederatedResourceQuota (named after kube-apiserver's admission and Kueue's quota series).
QUOTA_ADMISSIONS = Counter(
    "flotilla_quota_admission_total",
    "Quota admission reviews by result (allowed | denied | error) and reason.",
    ["result", "reason"],
)
QUOTA_ADMISSION_DURATION = Histogram(
    "flotilla_quota_admission_duration_seconds",
    "Time to answer one quota admission review (listing quotas, checking, charging).",
    ["result"],
    buckets=_BUCKETS,
)
QUOTA_CHARGE_CONFLICTS = Counter(
    "flotilla_quota_charge_conflicts_total",
    "Charges retried because another apply (or the quota controller) updated the quota first.",
)
QUOTA_USED = Gauge(
    "flotilla_quota_used",
    "FederatedResourceQuota usage (canonical units).",
    ["namespace", "name", "resource"],
)
QUOTA_HARD = Gauge(
    "flotilla_quota_hard",
    "FederatedResourceQuota limit (canonical units).",
    ["namespace", "name", "resource"],
)
HUB_HOLD = Counter(
    "flotilla_hub_hold_total",
    "Hub hold admission answers by workload kind and action (managed_by: spec.managedBy set on a "
    "Job or JobSet | gated: a pod got the flotilla.dev/hub-hold scheduling gate | passed: not "
    "propagated | refused: a pod with nodeName | error: a lookup failed, admitted unchanged).",
    ["kind", "action"],
)
