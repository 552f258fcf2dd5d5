"""MemberCluster taints Flotilla sets itself, and the list edits that set them (pure functions).

Keys (``cluster.flotilla.dev/``, after Karmada's ``cluster.karmada.io/not-ready``,
``.../unreachable`` and ``.../unschedulable``):

* :data:`NOT_READY` and :data:`UNREACHABLE` are *automatic*: the operator adds them to a member
  that is not Ready (``unreachable`` when its API server does not answer at all, ``not-ready``
  otherwise) - ``NoSchedule`` at once, ``NoExecute`` once the member has been tainted for the
  grace period - and removes them when it is Ready again. Both carry ``timeAdded``. These two
  keys belong to the operator: one set by hand is removed when the member is Ready.
* :data:`UNSCHEDULABLE` (``NoSchedule``) is set by ``kubectl flotilla cordon`` and removed by
  ``uncordon``; the operator never touches it.

Every function returns a new list and leaves the taints it does not own as they were, in order.
Taints are the dicts of ``MemberCluster.spec.taints`` (``key``, ``value``, ``effect``,
``timeAdded``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flotilla.api.base import _rfc3339
from flotilla.scheduler.snapshot import parse_time

__all__ = [
    "AUTOMATIC_KEYS",
    "NOT_READY",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "UNREACHABLE",
    "UNSCHEDULABLE",
    "automatic_taints",
    "cordon",
    "is_automatic",
    "is_cordoned",
    "no_execute_due",
    "parse_time",
    "same_taints",
    "taint_string",
    "uncordon",
]

NOT_READY = "cluster.flotilla.dev/not-ready"
UNREACHABLE = "cluster.flotilla.dev/unreachable"
UNSCHEDULABLE = "cluster.flotilla.dev/unschedulable"
AUTOMATIC_KEYS = frozenset({NOT_READY, UNREACHABLE})
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

Taints = Sequence[Mapping[str, Any]]


def is_automatic(taint: Mapping[str, Any]) -> bool:
    return taint.get("key") in AUTOMATIC_KEYS


def taint_string(taint: Mapping[str, Any]) -> str:
    """``key[=value]:effect``, as kubectl prints taints."""
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def _taint(key: str, effect: str, added: datetime) -> dict[str, Any]:
    return {"key": key, "effect": effect, "timeAdded": _rfc3339(added)}


def automatic_taints(
    taints: Taints | None,
    health: str,
    *,
    unreachable: bool = False,
    since: datetime,
    now: datetime,
    no_execute_after: float | None,
    enabled: bool = True,
) -> list[dict[str, Any]]:
    """``taints`` with the automatic taints a member in ``health`` should carry.

    ``health`` is the member's health verdict (``Ready``, ``NotReady`` or ``Unknown``; see
    :class:`flotilla.inventory.health.Health`), ``since`` when it began, ``now`` the current time.

    * ``Unknown`` (the operator has just started and not decided yet): unchanged, whatever
      automatic taints the member carries stay until a verdict.
    * ``Ready``: the automatic taints are removed (also when ``enabled`` is false, so turning
      the feature off never strands a member).
    * ``NotReady`` (and ``enabled``): a ``NoSchedule`` taint keyed :data:`UNREACHABLE` when
      ``unreachable`` else :data:`NOT_READY`, with ``timeAdded`` kept from an automatic
      ``NoSchedule`` taint the member already carries (under either key: switching between
      ``unreachable`` and ``not-ready`` does not restart the clock), else ``since``. A
      ``NoExecute`` taint of the same key once ``no_execute_after`` seconds have passed since
      that time (never when ``no_execute_after`` is None or negative), ``timeAdded`` likewise
      kept, else ``now``.
    """
    current = [dict(t) for t in taints or ()]
    if health not in ("Ready", "NotReady"):
        return current
    kept = [t for t in current if not is_automatic(t)]
    if health == "Ready" or not enabled:
        return kept if health == "Ready" else current

    def first_added(effect: str) -> datetime | None:
        times = [
            parse_time(t.get("timeAdded")) or now
            for t in current
            if is_automatic(t) and t.get("effect") == effect
        ]
        return min(times) if times else None

    key = UNREACHABLE if unreachable else NOT_READY
    tainted_since = first_added(NO_SCHEDULE) or since
    out = [*kept, _taint(key, NO_SCHEDULE, tainted_since)]
    executing_since = first_added(NO_EXECUTE)  # once added, kept until the member is Ready
    if (
        executing_since is None
        and no_execute_due(current, since=since, now=now, no_execute_after=no_execute_after) == 0
    ):
        executing_since = now
    if executing_since is not None:
        out.append(_taint(key, NO_EXECUTE, executing_since))
    return out


def no_execute_due(
    taints: Taints | None, *, since: datetime, now: datetime, no_execute_after: float | None
) -> float | None:
    """Seconds until :func:`automatic_taints` would add the ``NoExecute`` taint to a NotReady
    member that does not carry it yet (0 when due now); None when it carries it or never will."""
    if no_execute_after is None or no_execute_after < 0:
        return None
    automatic = [t for t in taints or () if is_automatic(t)]
    if any(t.get("effect") == NO_EXECUTE for t in automatic):
        return None
    times = [parse_time(t.get("timeAdded")) or now for t in automatic if t.get("effect") == NO_SCHEDULE]
    start = min(times) if times else since
    return max(0.0, (start + timedelta(seconds=no_execute_after) - now).total_seconds())


def is_cordoned(taints: Iterable[Mapping[str, Any]] | None) -> bool:
    """Whether the member carries the cordon taint (:data:`UNSCHEDULABLE`)."""
    return any(t.get("key") == UNSCHEDULABLE for t in taints or ())


def cordon(taints: Taints | None, now: datetime) -> list[dict[str, Any]]:
    """``taints`` plus ``cluster.flotilla.dev/unschedulable:NoSchedule`` (unchanged if present)."""
    current = [dict(t) for t in taints or ()]
    if any(t.get("key") == UNSCHEDULABLE and t.get("effect") == NO_SCHEDULE for t in current):
        return current
    return [*current, _taint(UNSCHEDULABLE, NO_SCHEDULE, now)]


def uncordon(taints: Taints | None) -> list[dict[str, Any]]:
    """``taints`` without any ``cluster.flotilla.dev/unschedulable`` taint."""
    return [dict(t) for t in taints or () if t.get("key") != UNSCHEDULABLE]


def same_taints(a: Taints | None, b: Taints | None) -> bool:
    """Equal as the API server would store them (absent value = empty value; order counts)."""

    def norm(taints: Taints | None) -> list[tuple[Any, ...]]:
        return [
            (t.get("key"), t.get("value") or "", t.get("effect"), t.get("timeAdded") or None)
            for t in taints or ()
        ]

    return norm(a) == norm(b)
