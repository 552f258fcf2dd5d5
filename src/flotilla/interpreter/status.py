"""Helpers for reflecting member status and aggregating it onto the hub template."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "aggregate_conditions",
    "condition",
    "condition_true",
    "first_status",
    "pick",
    "sum_fields",
]


def pick(status: Mapping[str, Any] | None, fields: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``status`` restricted to ``fields`` (absent fields are left out)."""
    status = status or {}
    return {name: copy.deepcopy(status[name]) for name in fields if name in status}


def sum_fields(per_cluster: Mapping[str, Mapping[str, Any]], fields: Iterable[str]) -> dict[str, int]:
    """Per field, the sum over clusters of the integers reported (fields nobody reports are left out)."""
    out: dict[str, int] = {}
    for name in fields:
        values = [s[name] for s in per_cluster.values() if isinstance(s.get(name), int)]
        if values:
            out[name] = sum(values)
    return out


def first_status(per_cluster: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The status of the first cluster by name (for kinds that run whole in one cluster)."""
    for name in sorted(per_cluster):
        return copy.deepcopy(dict(per_cluster[name]))
    return {}


def condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of the given type in ``status.conditions``, or None."""
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return cond
    return None


def condition_true(status: Mapping[str, Any] | None, type_: str) -> bool:
    """True when ``status`` has a condition of that type with status ``"True"``."""
    cond = condition(status, type_)
    return cond is not None and cond.get("status") == "True"


def aggregate_conditions(
    per_cluster: Mapping[str, Mapping[str, Any]], types: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Fleet-wide conditions: ``True`` only when every cluster says True, ``False`` when any says False.

    Otherwise ``Unknown`` (a cluster that has not reported the type counts as Unknown). ``types``
    defaults to every type any cluster reports; a type nobody reports is left out. The reason is
    taken from the first cluster (by name) that is not True, the message names the clusters, and
    ``lastTransitionTime`` is the latest reported one.
    """
    clusters = sorted(per_cluster)
    if types is None:
        seen: dict[str, None] = {}
        for name in clusters:
            for cond in per_cluster[name].get("conditions") or []:
                if isinstance(cond, Mapping) and cond.get("type"):
                    seen.setdefault(str(cond["type"]), None)
        types = list(seen)
    out: list[dict[str, Any]] = []
    for type_ in types:
        reported = {name: condition(per_cluster[name], type_) for name in clusters}
        if all(c is None for c in reported.values()):
            continue
        statuses = {name: (c or {}).get("status", "Unknown") for name, c in reported.items()}
        if all(s == "True" for s in statuses.values()):
            verdict = "True"
        elif any(s == "False" for s in statuses.values()):
            verdict = "False"
        else:
            verdict = "Unknown"
        lagging = [name for name in clusters if statuses[name] != "True"]
        source = reported[lagging[0]] if lagging else reported[clusters[0]]
        reason = (source or {}).get("reason") or ("AllClusters" if not lagging else "ClusterNotReported")
        if lagging:
            message = "; ".join(_describe(name, statuses[name], reported[name]) for name in lagging)
        else:
            message = f"{type_} in all {len(clusters)} cluster(s)"
        times = [str(c["lastTransitionTime"]) for c in reported.values() if c and c.get("lastTransitionTime")]
        entry: dict[str, Any] = {"type": type_, "status": verdict, "reason": reason, "message": message}
        if times:
            entry["lastTransitionTime"] = max(times)
        out.append(entry)
    return out


def _describe(cluster: str, status: str, cond: Mapping[str, Any] | None) -> str:
    text = (cond or {}).get("message")
    return f"{cluster}: {status}" + (f" ({text})" if text else "")
