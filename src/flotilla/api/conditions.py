"""metav1.Condition: the model used in every status, and helpers to build and merge condition dicts.

``set_condition`` follows ``meta.SetStatusCondition`` from apimachinery: the
``lastTransitionTime`` only moves when the status changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from flotilla.api.base import KubeModel, NonNegInt64, Schema, Timestamp, _rfc3339

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MAX_CONDITIONS = 16

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(KubeModel):
    """One aspect of the object's current state (metav1.Condition)."""

    type: str = Field(
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of condition in CamelCase or in foo.example.com/CamelCase.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: NonNegInt64 | None = Field(
        default=None,
        description="The .metadata.generation the condition was set for.",
    )
    last_transition_time: Timestamp = Field(
        description="Last time the condition changed from one status to another.",
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
        description="A programmatic identifier (CamelCase) for the reason of the last transition.",
    )
    message: str = Field(max_length=32768, description="Human-readable detail about the transition.")


Conditions = Annotated[
    list[Condition],
    Field(max_length=MAX_CONDITIONS),
    Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["type"]),
]
"""A status condition list, keyed by ``type`` (server-side apply merges by type)."""


def new_condition(
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A metav1.Condition dict ready to patch into ``status.conditions``.

    ``status`` may be a bool (True -> "True"). The dict is validated by :class:`Condition`, so an
    invalid type or reason raises ``pydantic.ValidationError`` here rather than at the API server.
    """
    if isinstance(status, bool):
        status = "True" if status else "False"
    body: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _rfc3339(now or datetime.now(UTC)),
    }
    if observed_generation is not None:
        body["observedGeneration"] = observed_generation
    Condition.model_validate(body)
    return body


def find_condition(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """The condition of a type in a list of condition dicts, or None."""
    for cond in conditions or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def set_condition(
    conditions: Iterable[Mapping[str, Any]] | None, new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """A copy of ``conditions`` with ``new`` set in place of the condition of the same type.

    When the status is unchanged the old ``lastTransitionTime`` is kept, so conditions only
    "transition" when their status flips.
    """
    result: list[dict[str, Any]] = []
    replaced = False
    for cond in conditions or ():
        if cond.get("type") != new["type"]:
            result.append(dict(cond))
            continue
        merged = dict(new)
        if cond.get("status") == new["status"] and cond.get("lastTransitionTime"):
            merged["lastTransitionTime"] = cond["lastTransitionTime"]
        result.append(merged)
        replaced = True
    if not replaced:
        result.append(dict(new))
    return result


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    """Whether the condition of this type exists and has status "True"."""
    cond = find_condition(conditions, type_)
    return cond is not None and cond.get("status") == "True"
