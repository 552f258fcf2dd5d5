"""Prometheus metrics (namespace ``flotilla``), named after kube-scheduler's, Kueue's and Karmada's.

Never labelled by workload name: labels are low-cardinality (result, profile, plugin, extension
point, reason, cluster, GPU model, verb). docs/operations.md has the table of which upstream
series each one mirrors. Every series labelled by member cluster is in :data:`CLUSTER_SERIES`
and goes when the member does (:func:`forget_cluster`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

if TYPE_CHECKING:
    from flotilla.scheduler.runtime import Framework

T = TypeVar("T")

_BUCKETS = tuple(0.0001 * 2**i for i in range(18))  # 0.1 ms .. ~13 s

PROFILE = "default-scheduler"
"""The scheduling profile label (kube-scheduler's ``profile``): Flotilla runs one profile, the one
``spec.schedulerName`` unset, ``default-scheduler`` or ``flotilla`` selects."""

SCHEDULE_ATTEMPTS = Counter(
    "flotilla_schedule_attempts_total",
    "Scheduling attempts by result (scheduled | unschedulable | error) and profile.",
    ["result", "profile"],
)
SCHEDULING_DURATION = Histogram(
    "flotilla_scheduling_attempt_duration_seconds",
    "Time of one scheduling attempt: waiting for the scheduler, the algorithm, reserving, and "
    "writing the decision (or the Unschedulable status) to the hub.",
    ["result", "profile"],
    buckets=_BUCKETS,
)
ALGORITHM_DURATION = Histogram(
    "flotilla_scheduling_algorithm_duration_seconds",
    "Time of the scheduling algorithm alone (filter, node fit, score, select, divide) per attempt.",
    ["profile"],
    buckets=_BUCKETS,
)
EXTENSION_POINT_DURATION = Histogram(
    "flotilla_framework_extension_point_duration_seconds",
    "Time of one extension point (PreFilter | Filter | Score | Reserve | Unreserve | Permit) in a "
    "scheduling attempt: the sum of "
    "its plugins' calls. Recorded on the sampled attempts (PLUGIN_SAMPLE_PERCENT).",
    ["extension_point", "profile"],
    buckets=_BUCKETS,
)
PLUGIN_DURATION = Histogram(
    "flotilla_plugin_execution_duration_seconds",
    "Time of one plugin at one extension point in one scheduling attempt (Filter: its calls on "
    "every cluster, summed). Recorded on the sampled attempts (PLUGIN_SAMPLE_PERCENT).",
    ["plugin", "extension_point", "profile"],
    buckets=tuple(0.000001 * 2**i for i in range(20)),  # 1 us .. ~0.5 s
)
UNSCHEDULABLE = Gauge(
    "flotilla_unschedulable_workloads",
    "Workloads waiting because no cluster fits, by a plugin that rejected them (a workload counts "
    "once for each plugin that rejected at least one cluster).",
    ["plugin", "profile"],
)
PENDING = Gauge(
    "flotilla_pending_workloads",
    "Workloads without a placement, by reason: NoClusterFits (no cluster fits now; retried when "
    "capacity changes) or SchedulerError (the scheduler failed; retried with backoff).",
    ["reason"],
)
OLDEST_PENDING = Gauge(
    "flotilla_oldest_pending_workload_seconds",
    "How long the workload waiting longest for a placement has waited (0 when none waits).",
)
ADMISSION_WAIT = Histogram(
    "flotilla_admission_wait_time_seconds",
    "From a workload template's creation (its creationTimestamp, one-second resolution) to its "
    "first placement.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
READY_WAIT = Histogram(
    "flotilla_scheduled_until_ready_wait_time_seconds",
    "From a placement decision to the workload's copy on a chosen member reporting healthy, by member.",
    ["cluster"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
DISPATCHED = Counter(
    "flotilla_workloads_dispatched_total", "Workload copies applied to member clusters.", ["cluster"]
)
PROPAGATION = Histogram(
    "flotilla_propagation_duration_seconds",
    "Time to apply one workload copy (with its dependencies) to a member cluster.",
    ["cluster"],
    buckets=_BUCKETS,
)
PROPAGATION_ATTEMPTS = Counter(
    "flotilla_propagation_attempts_total",
    "Attempts to apply a workload copy to a member cluster, by result (applied | failed).",
    ["cluster", "result"],
)
PROPAGATION_FAILURES = Counter(
    "flotilla_propagation_failures_total",
    "Failed attempts to apply a workload copy to a member cluster, by reason (NotConnected | "
    "Unreachable | Timeout | Unauthorized | Forbidden | NotFound | Conflict | Invalid | Rejected | "
    "Throttled | ServerError | NotServed | InterpreterError | Error).",
    ["cluster", "reason"],
)
MEMBER_API_DURATION = Histogram(
    "flotilla_member_api_request_duration_seconds",
    "Time of one request of the controllers to a member's API server, by verb (get | list | apply "
    "| create | patch | delete), answered or not.",
    ["cluster", "verb"],
    buckets=_BUCKETS,
)
MEMBER_API_ERRORS = Counter(
    "flotilla_member_api_errors_total",
    "Requests of the controllers to a member's API server that failed, by verb and reason (see "
    "flotilla_propagation_failures_total; an absent object asked for is not an error).",
    ["cluster", "verb", "reason"],
)
CLUSTER_READY = Gauge("flotilla_cluster_ready", "1 when the member cluster is Ready.", ["cluster"])
CLUSTER_GPUS = Gauge(
    "flotilla_cluster_gpu_allocatable", "Allocatable GPUs per member and GPU model.", ["cluster", "gpu_model"]
)
CLUSTER_GPUS_ALLOCATED = Gauge(
    "flotilla_cluster_gpu_allocated",
    "GPUs with pods on them (allocatable - free) per member and GPU model.",
    ["cluster", "gpu_model"],
)
CLUSTER_GPUS_FREE = Gauge(
    "flotilla_cluster_gpu_free",
    "Fully free GPUs per member and GPU model (schedulable nodes).",
    ["cluster", "gpu_model"],
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
    "(ClusterUnreachable | ClusterNotReady | TaintUntolerated | ApplicationFailure | Moved).",
    ["cluster", "reason"],
)
FAILOVER_DURATION = Histogram(
    "flotilla_failover_duration_seconds",
    "From the moment a workload had to leave a cluster (the NoExecute taint's timeAdded, plus the "
    "workload's tolerationSeconds; for an application failure, when it turned unhealthy plus its "
    "toleration; for a move, the request) to its replacement applied on the new clusters.",
    buckets=(0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600),
)
FAILOVER_WAITING = Gauge(
    "flotilla_failover_waiting_workloads",
    "Workloads due for eviction that wait: for the eviction rate limit, or for room elsewhere.",
    ["reason"],
)

FRAGMENTATION_TOP_CLASSES = 10
"""Classes of the learned distribution exported (the heaviest; bounds the label set)."""
FRAGMENTATION_CLASS_WEIGHT = Gauge(
    "flotilla_scheduler_fragmentation_class_weight",
    "Weight (0..1) of a pod shape in the target distribution GPUFragmentation scores with, for "
    f"its {FRAGMENTATION_TOP_CLASSES} heaviest shapes (cpu, whole GPUs, GPU milli-share); learned "
    "from the workloads seen unless learning is off.",
    ["shape", "profile"],
)
FRAGMENTATION_EPOCH = Gauge(
    "flotilla_scheduler_fragmentation_epoch",
    "How many times GPUFragmentation's target distribution changed (each change drops the "
    "memoised node scores).",
    ["profile"],
)
FRAGMENTATION_OBSERVED = Gauge(
    "flotilla_scheduler_fragmentation_observed_pods",
    "Pods GPUFragmentation has observed (each workload's roles, once per shape) since start.",
    ["profile"],
)
FRAGMENTATION_LEARNING = Gauge(
    "flotilla_scheduler_fragmentation_learning",
    "1 when GPUFragmentation learns its target distribution, 0 when it keeps its prior.",
    ["profile"],
)


def shape_label(entry: Mapping[str, object]) -> str:
    """``cpu=3152m,gpus=0,gpuMilli=810`` for one class of ``GPUFragmentationPlugin.describe()``."""
    return f"cpu={entry['cpu']},gpus={entry['gpus']},gpuMilli={entry['gpuMilli']}"


def set_fragmentation(described: Mapping[str, Any], profile: str = PROFILE) -> None:
    """The fragmentation gauges from ``GPUFragmentationPlugin.describe(FRAGMENTATION_TOP_CLASSES)``;
    shapes that left the top classes lose their series."""
    FRAGMENTATION_EPOCH.labels(profile=profile).set(int(described["epoch"]))
    FRAGMENTATION_LEARNING.labels(profile=profile).set(1 if described["learn"] else 0)
    seen = set()
    for entry in described["classes"]:
        label = shape_label(entry)
        seen.add(label)
        FRAGMENTATION_CLASS_WEIGHT.labels(shape=label, profile=profile).set(float(entry["weight"]))
    _remove_where(FRAGMENTATION_CLASS_WEIGHT, "profile", seen, profile, kept_label="shape")


def _remove_where(
    metric: MetricWrapperBase,
    label: str,
    keep: Iterable[str] | None,
    value: str,
    kept_label: str = "gpu_model",
) -> None:
    """Remove the children of ``metric`` whose ``label`` is ``value`` (``keep`` None), or, with
    ``keep``, those of ``value``'s series whose ``kept_label`` is not in ``keep``."""
    names = metric._labelnames  # private, but stable across prometheus_client versions
    index = names.index(label)
    kept = None if keep is None else set(keep)
    other = names.index(kept_label) if kept is not None else -1
    for values in list(metric._metrics):
        if values[index] == value and (kept is None or values[other] not in kept):
            metric.remove(*values)


def set_cluster_gpus(cluster: str, models: Iterable[dict[str, int | str]]) -> None:
    """The member's GPU gauges from ``status.resourceSummary.gpuModels`` (``model``, ``total``,
    ``free``); a model the member no longer has loses its series."""
    seen = []
    for entry in models:
        model, total, free = str(entry["model"]), int(entry.get("total", 0)), int(entry.get("free", 0))
        seen.append(model)
        CLUSTER_GPUS.labels(cluster=cluster, gpu_model=model).set(total)
        CLUSTER_GPUS_ALLOCATED.labels(cluster=cluster, gpu_model=model).set(max(total - free, 0))
        CLUSTER_GPUS_FREE.labels(cluster=cluster, gpu_model=model).set(free)
    for gauge in (CLUSTER_GPUS, CLUSTER_GPUS_ALLOCATED, CLUSTER_GPUS_FREE):
        _remove_where(gauge, "cluster", seen, cluster)


BUILD_INFO = Info("flotilla_build", "Flotilla version.")

PLUGIN_SAMPLE_PERCENT = 10
"""Per-plugin and per-extension-point durations are recorded on one scheduling attempt in ten
(the first included), as kube-scheduler samples its plugin metrics: timing every plugin call of
every attempt would cost more than the calls themselves."""


class SchedulerObserver:
    """The scheduler core's observer hook (``Framework.observer``) turned into histograms.

    Used by one scheduling controller under its scheduler lock, through :meth:`timed`: it times
    the algorithm, and on a sampled attempt (:meth:`begin`) sets :meth:`record` as the framework's
    observer, which the framework calls once per timed plugin call (it only adds the time up);
    :meth:`end` then observes the plugin and extension-point histograms once per plugin and point
    (not once per call: a Filter plugin is called once per cluster).
    """

    def __init__(self, profile: str = PROFILE, sample_percent: int = PLUGIN_SAMPLE_PERCENT) -> None:
        self.profile = profile
        self.every = max(1, round(100 / sample_percent)) if sample_percent > 0 else 0
        self.attempts = 0
        self.sums: dict[tuple[str, str], float] = {}
        """``(plugin, extension point) -> seconds`` of the current attempt."""
        self._plugins: dict[tuple[str, str], Histogram] = {}
        self._points: dict[str, Histogram] = {}
        self._algorithm = ALGORITHM_DURATION.labels(profile=profile)

    def timed(self, framework: Framework, run: Callable[[], T]) -> T:
        """``run()`` (one run of the scheduling algorithm with ``framework``), timed as such, and
        on a sampled attempt with every plugin call timed."""
        sampled = self.begin()
        previous = framework.observer
        if sampled:
            framework.observer = self.record
        started = time.perf_counter()
        try:
            return run()
        finally:
            self._algorithm.observe(time.perf_counter() - started)
            if sampled:
                framework.observer = previous
                self.end()

    def begin(self) -> bool:
        """Start an attempt; True when its plugin calls are to be timed."""
        sampled = self.every > 0 and self.attempts % self.every == 0
        self.attempts += 1
        self.sums.clear()
        return sampled

    def record(self, point: str, plugin: str, seconds: float) -> None:
        key = (plugin, point)
        self.sums[key] = self.sums.get(key, 0.0) + seconds

    def end(self) -> None:
        totals: dict[str, float] = {}
        for key, seconds in self.sums.items():
            child = self._plugins.get(key)
            if child is None:
                child = self._plugins[key] = PLUGIN_DURATION.labels(key[0], key[1], self.profile)
            child.observe(seconds)
            totals[key[1]] = totals.get(key[1], 0.0) + seconds
        for point, total in totals.items():
            point_child = self._points.get(point)
            if point_child is None:
                point_child = self._points[point] = EXTENSION_POINT_DURATION.labels(point, self.profile)
            point_child.observe(total)
        self.sums.clear()


def observe_schedule(result: str, seconds: float, profile: str = PROFILE) -> None:
    """One scheduling attempt: ``result`` is scheduled, unschedulable or error."""
    SCHEDULE_ATTEMPTS.labels(result=result, profile=profile).inc()
    SCHEDULING_DURATION.labels(result=result, profile=profile).observe(seconds)


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

CLUSTER_SERIES: tuple[MetricWrapperBase, ...] = (
    CLUSTER_READY,
    CLUSTER_GPUS,
    CLUSTER_GPUS_ALLOCATED,
    CLUSTER_GPUS_FREE,
    CLUSTER_PROBE_FAILURES,
    CLUSTER_TAINTS_ADDED,
    FAILOVERS,
    DISPATCHED,
    PROPAGATION,
    PROPAGATION_ATTEMPTS,
    PROPAGATION_FAILURES,
    MEMBER_API_DURATION,
    MEMBER_API_ERRORS,
    MEMBER_WATCH_EVENTS,
    READY_WAIT,
)
"""Every series labelled by member cluster: see :func:`forget_cluster`."""


def forget_cluster(name: str) -> None:
    """Drop every series of a member cluster (it was removed), so none lingers with a stale value."""
    for metric in CLUSTER_SERIES:
        _remove_where(metric, "cluster", None, name)


HUB_HOLD = Counter(
    "flotilla_hub_hold_total",
    "Hub hold admission answers by workload kind and action (managed_by: spec.managedBy set on a "
    "Job or JobSet | gated: a pod got the flotilla.dev/hub-hold scheduling gate | passed: not "
    "propagated | refused: a pod with nodeName | error: a lookup failed, admitted unchanged).",
    ["kind", "action"],
)
