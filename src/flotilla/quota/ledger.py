"""A FederatedResourceQuota's books: hard limits, charges, usage, and the admission check.

All amounts are canonical integers (see :mod:`flotilla.scheduler.quantity`) keyed by the
resource names the quota itself uses (``nvidia.com/gpu``, or ``requests.nvidia.com/gpu`` as a
ResourceQuota would say; both count requests).

``status.overallUsed`` is the ledger the webhook charges against, like a ResourceQuota's
``status.used``: an admitted apply adds its increase there together with a :class:`Charge`, in
one optimistic-concurrency status update. The quota controller later recomputes the status from
the workloads it sees; a charge counts until its workload shows the charged usage (then the
workload itself counts) or the charge expires.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flotilla.api.conditions import new_condition as _new_condition
from flotilla.api.conditions import set_condition
from flotilla.inventory.convert import format_quantity
from flotilla.quota.usage import quota_resource
from flotilla.scheduler.quantity import ResourceList, to_canonical

CONDITION_EXCEEDED = "Exceeded"
CONDITION_READY = "Ready"


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> dt.datetime:
    return dt.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def parse_quota_list(raw: Mapping[str, Any] | None) -> ResourceList:
    """A quota's ``{name: quantity}`` in canonical units (``requests.cpu`` in millicores, like cpu)."""
    return {str(k): to_canonical(quota_resource(str(k)) or str(k), v) for k, v in (raw or {}).items()}


def format_quota_list(amounts: Mapping[str, int]) -> dict[str, str]:
    return {k: format_quantity(quota_resource(k) or k, amounts[k]) for k in sorted(amounts)}


@dataclass(frozen=True)
class Charge:
    """An admitted apply whose workload the quota controller has not yet seen at this usage."""

    workload: str
    usage: ResourceList
    increase: ResourceList
    expires: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "usage": format_quota_list(self.usage),
            "increase": format_quota_list(self.increase),
            "expires": _rfc3339(self.expires),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Charge:
        return cls(
            workload=str(raw["workload"]),
            usage=parse_quota_list(raw.get("usage")),
            increase=parse_quota_list(raw.get("increase")),
            expires=_parse_time(raw["expires"]),
        )

    def shown_by(self, observed: Mapping[str, int] | None) -> bool:
        """Whether the workload, as observed, uses at least what was charged for it."""
        return observed is not None and all(observed.get(r, 0) >= v for r, v in self.usage.items())


@dataclass(frozen=True)
class Quota:
    namespace: str
    name: str
    hard: ResourceList
    static: Mapping[str, ResourceList]
    used: ResourceList | None
    """``status.overallUsed``; None until the quota controller has computed it once."""
    charges: tuple[Charge, ...]
    generation: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Quota:
        meta = body["metadata"]
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        counted = {k: v for k, v in parse_quota_list(spec.get("overall")).items() if quota_resource(k)}
        used = status.get("overallUsed")
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta["name"]),
            hard=counted,
            static={
                str(a["clusterName"]): parse_quota_list(a.get("hard"))
                for a in spec.get("staticAssignments") or ()
            },
            used=None if used is None or status.get("observedGeneration") is None else parse_quota_list(used),
            charges=tuple(Charge.from_dict(c) for c in status.get("charges") or ()),
            generation=int(meta.get("generation") or 0),
        )

    @property
    def title(self) -> str:
        return f"FederatedResourceQuota {self.namespace}/{self.name}"

    def restrict(self, usage: Mapping[str, int], names: Sequence[str] | None = None) -> ResourceList:
        """``usage`` (keyed by resource) in this quota's names, for the resources it limits."""
        out: ResourceList = {}
        for name in self.hard if names is None else names:
            key = quota_resource(name)
            if key is not None and usage.get(key, 0):
                out[name] = usage[key]
        return out


def increase_of(new: Mapping[str, int], old: Mapping[str, int]) -> ResourceList:
    """What ``new`` asks beyond ``old``, per resource (only the increases)."""
    return {r: v - old.get(r, 0) for r, v in new.items() if v > old.get(r, 0)}


def effective_usage(
    quota: Quota, observed: Mapping[str, Mapping[str, int]], now: dt.datetime
) -> tuple[ResourceList, tuple[Charge, ...]]:
    """Usage (in the quota's names) of the observed workloads plus the charges still live.

    ``observed`` maps workload ids to their usage keyed by resource. A charge is live until it
    expires or its workload shows the charged usage; a workload with live charges counts the
    largest of what it shows and what was charged for it."""
    restricted = {w: quota.restrict(u) for w, u in observed.items()}
    live = tuple(c for c in quota.charges if c.expires > now and not c.shown_by(restricted.get(c.workload)))
    for c in live:
        current = restricted.get(c.workload, {})
        restricted[c.workload] = {r: max(current.get(r, 0), c.usage.get(r, 0)) for r in {*current, *c.usage}}
    used: ResourceList = dict.fromkeys(quota.hard, 0)
    for usage in restricted.values():
        for r, v in usage.items():
            if r in used:
                used[r] += v
    return used, live


@dataclass(frozen=True)
class QuotaCheck:
    allowed: bool
    message: str
    increase: ResourceList
    """The apply's increase in this quota's names (empty: the quota is not concerned)."""


def check(quota: Quota, increase: Mapping[str, int], used: Mapping[str, int]) -> QuotaCheck:
    """Whether ``increase`` (keyed by resource) fits in what ``quota`` has left given ``used``."""
    wanted = quota.restrict(increase)
    over = [r for r, v in sorted(wanted.items()) if used.get(r, 0) + v > quota.hard[r]]
    if not over:
        return QuotaCheck(True, "", wanted)
    parts = []
    for r in over:
        hard, have = quota.hard[r], used.get(r, 0)
        unit = quota_resource(r) or r
        parts.append(
            f"requested {r}={format_quantity(unit, wanted[r])}, used {format_quantity(unit, have)} "
            f"of {format_quantity(unit, hard)}, {format_quantity(unit, max(hard - have, 0))} left"
        )
    return QuotaCheck(False, f"{quota.title}: " + "; ".join(parts), wanted)


def charged(
    status: Mapping[str, Any], quota: Quota, charge: Charge, used: Mapping[str, int]
) -> dict[str, Any]:
    """``status`` after charging: ``overallUsed`` = ``used`` + the charge's increase, charge added."""
    out = dict(status)
    total = dict(used)
    for r, v in charge.increase.items():
        total[r] = total.get(r, 0) + v
    out["overallUsed"] = format_quota_list(total)
    out["charges"] = [*(status.get("charges") or ()), charge.to_dict()]
    return out


def compute_status(
    quota: Quota,
    status: Mapping[str, Any],
    observed: Mapping[str, Mapping[str, int]],
    per_cluster: Mapping[str, Mapping[str, int]],
    now: dt.datetime,
    *,
    enforced: bool = True,
) -> dict[str, Any]:
    """The quota's status recomputed from what is observed (``status`` supplies conditions and charges).

    ``per_cluster`` is usage by member cluster (keyed by resource). ``enforced`` says whether the
    admission webhook is serving (the Ready condition)."""
    used, live = effective_usage(quota, observed, now)
    clusters = sorted({*quota.static, *(c for c, u in per_cluster.items() if quota.restrict(u))})
    aggregated = []
    for cluster in clusters:
        entry: dict[str, Any] = {"clusterName": cluster}
        if cluster in quota.static:
            entry["hard"] = format_quota_list(quota.static[cluster])
        entry["used"] = format_quota_list(
            {r: v for r, v in quota.restrict(per_cluster.get(cluster) or {}).items() if v}
        )
        aggregated.append(entry)
    over = [r for r in sorted(used) if used[r] > quota.hard[r]]
    conditions = list(status.get("conditions") or [])
    if over:
        detail = ", ".join(
            f"{r} used {format_quantity(quota_resource(r) or r, used[r])} of "
            f"{format_quantity(quota_resource(r) or r, quota.hard[r])}"
            for r in over
        )
        exceeded = _new_condition(
            CONDITION_EXCEEDED,
            True,
            "OverQuota",
            f"namespace {quota.namespace} is over quota ({detail}): running workloads keep running, "
            "new applies that raise these resources are rejected",
            quota.generation,
        )
    else:
        exceeded = _new_condition(
            CONDITION_EXCEEDED, False, "WithinQuota", "usage is within the quota", quota.generation
        )
    conditions = set_condition(conditions, exceeded)
    ready = (
        _new_condition(
            CONDITION_READY,
            True,
            "Enforced",
            "applies are checked by the admission webhook",
            quota.generation,
        )
        if enforced
        else _new_condition(
            CONDITION_READY,
            False,
            "WebhookDisabled",
            "usage is accounted but applies are not checked",
            quota.generation,
        )
    )
    conditions = set_condition(conditions, ready)
    out: dict[str, Any] = {
        "observedGeneration": quota.generation,
        "conditions": conditions,
        "overall": format_quota_list(quota.hard),
        "overallUsed": format_quota_list(used),
    }
    if aggregated:
        out["aggregatedStatus"] = aggregated
    if live:
        out["charges"] = [c.to_dict() for c in live]
    return out
