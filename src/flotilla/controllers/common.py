"""Pieces every controller uses: conditions, the event sink, replica division, timestamps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from flotilla import API_GROUP, FIELD_MANAGER
from flotilla.api.conditions import new_condition, set_condition

EmitEvent = Callable[[Mapping[str, Any], str, str, str], None]
"""``emit(object, type, reason, message)``: posts a Kubernetes Event (best effort)."""

SCHEDULED_HASH_ANNOTATION = f"{API_GROUP}/scheduled-inputs"
SCHEDULER_FIELD_MANAGER = f"{FIELD_MANAGER}-scheduler"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(
    previous: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
) -> list[dict[str, Any]]:
    """``previous`` with one metav1.Condition set (its lastTransitionTime kept while the status holds)."""
    return set_condition(previous, new_condition(type_, status, reason, message[:32768], generation))


def same_conditions(a: list[dict[str, Any]] | None, b: list[dict[str, Any]] | None) -> bool:
    """Equal but for lastTransitionTime (which set_condition keeps while the status holds)."""

    def strip(conds: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
        return [
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration"))
            for c in conds or ()
        ]

    return strip(a) == strip(b)


def divide_exactly(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder, ties by name), exactly.

    The scheduler counts every pod of every role per cluster; the member copy is revised by the
    kind's divisible replica count (e.g. a RayCluster's worker replicas, not its head), so the
    per-cluster pod counts are scaled to it. Single-role kinds come out unchanged.
    """
    pods = sum(weights.values())
    if pods == 0:
        return dict.fromkeys(weights, 0)
    exact = {n: total * w / pods for n, w in weights.items()}
    out = {n: int(v) for n, v in exact.items()}
    rest = total - sum(out.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - out[n]), n))[:rest]:
        out[name] += 1
    return out


def template_stub(binding: Mapping[str, Any]) -> dict[str, Any]:
    """The template a binding is for, as a reference object (for Events and deletes)."""
    resource = binding["spec"]["resource"]
    return {
        "apiVersion": resource["apiVersion"],
        "kind": resource["kind"],
        "metadata": {
            "name": resource["name"],
            "namespace": resource.get("namespace"),
            "uid": resource.get("uid"),
        },
    }
