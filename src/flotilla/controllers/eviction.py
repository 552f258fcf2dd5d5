"""Eviction records of a binding (``spec.gracefulEvictionTasks``) and the taint rules (pure; no I/O).

A binding's ``spec.gracefulEvictionTasks`` (Karmada's field) is the durable record of a failover:
one task per cluster the workload was evicted from, written in the same request as the decision
that moved it. While a task stands:

* the scheduler never chooses its ``fromCluster`` for the workload (the ClusterEviction plugin is
  fed from the tasks, see :func:`evicted_clusters`);
* the copy on ``fromCluster`` is kept while ``suppressDeletion`` is true (purge modes Gracefully,
  until the replacement is healthy or the grace period ends, and Never, until a user clears it),
  and is removed otherwise (Directly; Gracefully once due), at once or when the member answers
  again (see :func:`kept_clusters`).

A task is dropped once its cluster is Ready and untainted again and no copy is left there, so the
cluster may be chosen again by later decisions. An operator restarted in the middle of a failover
reads all of this back from the binding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flotilla.api.taints import AUTOMATIC_KEYS, NO_EXECUTE, NOT_READY, UNREACHABLE, parse_time
from flotilla.scheduler.snapshot import Taint, Toleration

TASKS = "gracefulEvictionTasks"
PRODUCER = "flotilla-failover"
APPLICATION_FAILURE = "ApplicationFailure"
"""Reason of a task for a workload that stayed unhealthy on its cluster (Karmada's reason)."""
MOVED = "Moved"
"""Reason of a task for a workload moved by request (``kubectl flotilla move``)."""
MOVE_ANNOTATION = "flotilla.dev/move-to"
"""On a ResourceBinding: move the whole workload to this cluster (set by ``kubectl flotilla move``,
removed by the failover controller in the write that moves it, or when it cannot be done)."""
DIRECTLY, GRACEFULLY, NEVER = "Directly", "Gracefully", "Never"
_ALIASES = {"Immediately": DIRECTLY, "Graciously": GRACEFULLY}


def tasks_of(binding: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [dict(t) for t in ((binding or {}).get("spec") or {}).get(TASKS) or () if t.get("fromCluster")]


def evicted_clusters(binding: Mapping[str, Any] | None) -> frozenset[str]:
    """Clusters the workload was evicted from and must not be sent back to while the task stands."""
    return frozenset(str(t["fromCluster"]) for t in tasks_of(binding))


def kept_clusters(binding: Mapping[str, Any] | None) -> set[str]:
    """Clusters whose (old) copy stays in place for now: a task with ``suppressDeletion``."""
    return {str(t["fromCluster"]) for t in tasks_of(binding) if t.get("suppressDeletion")}


def purge_mode(value: Any, default: str = GRACEFULLY) -> str:
    mode = _ALIASES.get(str(value), str(value)) if value else default
    return mode if mode in (DIRECTLY, GRACEFULLY, NEVER) else default


@dataclass(frozen=True)
class Due:
    """When a workload must leave a cluster, and why: a NoExecute taint, or (no taint) an
    application failure or a move (``cause``, explained by ``detail``)."""

    at: datetime
    taint: Taint | None = None
    tolerated_for: int | None = None
    """The tolerationSeconds that delayed it (None: the taint is not tolerated at all)."""
    cause: str | None = None
    """The reason when no taint is the cause: ApplicationFailure or Moved."""
    detail: str = ""
    """The task's message when no taint is the cause."""
    purge_mode: str | None = None
    """The purge mode for this eviction (None: the policy's cluster failover mode)."""
    grace_seconds: int | None = None
    """The grace period of a Gracefully eviction (None: the operator's)."""

    @property
    def reason(self) -> str:
        """The task's reason: ClusterUnreachable, ClusterNotReady, (a user's taint)
        TaintUntolerated, ApplicationFailure or Moved."""
        if self.cause:
            return self.cause
        key = self.taint.key if self.taint is not None else ""
        if key == UNREACHABLE:
            return "ClusterUnreachable"
        if key == NOT_READY:
            return "ClusterNotReady"
        return "TaintUntolerated"

    @property
    def automatic(self) -> bool:
        return self.taint is not None and self.taint.key in AUTOMATIC_KEYS


def eviction_due(taints: Iterable[Taint], tolerations: Iterable[Toleration], now: datetime) -> Due | None:
    """The earliest time the workload must leave a cluster carrying ``taints`` (None: never).

    Kubernetes' NoExecute rules: a NoExecute taint no toleration matches evicts at once; one
    matched by tolerations that all lack ``tolerationSeconds`` never evicts; otherwise the
    shortest ``tolerationSeconds`` among the matching tolerations counts from the taint's
    ``timeAdded`` (from ``now`` when the taint has none).
    """
    tols = tuple(tolerations)
    best: Due | None = None
    for taint in taints:
        if taint.effect != NO_EXECUTE:
            continue
        matching = [t for t in tols if t.tolerates(taint)]
        added = taint.time_added or now
        if not matching:
            due = Due(min(added, now), taint)
        else:
            seconds = [t.toleration_seconds for t in matching if t.toleration_seconds is not None]
            if not seconds:
                continue  # tolerated for ever
            wait = max(0, min(seconds))
            due = Due(added + timedelta(seconds=wait), taint, wait)
        if best is None or due.at < best.at:
            best = due
    return best


def timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_task(
    cluster: str,
    due: Due,
    *,
    mode: str,
    grace_seconds: int,
    replicas: int | None,
    gang: bool,
    now: datetime,
) -> dict[str, Any]:
    """The eviction task for ``cluster`` (``due.purge_mode`` and ``due.grace_seconds``, when set,
    win over ``mode`` and ``grace_seconds``). A gang is always purged Directly unless the mode is Never:
    keeping the old copy of a training gang while its replacement starts would run it twice."""
    mode = due.purge_mode or mode
    grace_seconds = due.grace_seconds if due.grace_seconds is not None else grace_seconds
    if gang and mode == GRACEFULLY:
        mode = DIRECTLY
        note = "; a gang's old copy is removed at once (Gracefully is read as Directly for gangs)"
    else:
        note = ""
    if due.taint is not None:
        since = due.taint.time_added
        message = f"taint {due.taint}" + (f" added {timestamp(since)}" if since else "")
        if due.tolerated_for is not None:
            message += f", tolerated for {due.tolerated_for}s"
    else:
        message = due.detail
    task: dict[str, Any] = {
        "fromCluster": cluster,
        "reason": due.reason,
        "message": (message + note)[:1024],
        "producer": PRODUCER,
        "purgeMode": mode,
        "creationTimestamp": timestamp(now),
    }
    if replicas is not None:
        task["replicas"] = replicas
    if mode == GRACEFULLY:
        task["gracePeriodSeconds"] = grace_seconds
        task["suppressDeletion"] = True
    elif mode == NEVER:
        task["suppressDeletion"] = True
    return task


def grace_ends(task: Mapping[str, Any]) -> datetime | None:
    """When a Gracefully task's grace period ends (None: not a timed task)."""
    created = parse_time(task.get("creationTimestamp"))
    seconds = task.get("gracePeriodSeconds")
    if task.get("purgeMode") != GRACEFULLY or created is None or seconds is None:
        return None
    return created + timedelta(seconds=int(seconds))


def describe_tasks(tasks: Iterable[Mapping[str, Any]]) -> str:
    """``evicted from a (ClusterUnreachable), b (TaintUntolerated)``, or empty."""
    parts = [f"{t['fromCluster']} ({t.get('reason') or 'Evicted'})" for t in tasks]
    return "evicted from " + ", ".join(parts) if parts else ""
