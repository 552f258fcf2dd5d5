"""Kubernetes core shapes reused by several kinds: label selectors, tolerations, taints, status base."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from flotilla.api.base import KubeModel, NonNegInt64, Rule, Schema, Timestamp, cel
from flotilla.api.conditions import Conditions

Atomic = Schema(x_kubernetes_list_type="atomic")
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class LabelSelectorRequirement(KubeModel):
    """A selector requirement: a key, an operator and values."""

    key: str = Field(description="The label key the selector applies to.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="The key's relationship to the values: In, NotIn, Exists or DoesNotExist.",
    )
    values: Annotated[list[str], Atomic] | None = Field(
        default=None,
        description="Values for In and NotIn (non-empty); must be empty for Exists and DoesNotExist.",
    )


class LabelSelector(KubeModel):
    """A label query (metav1.LabelSelector); the requirements are ANDed."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-map-type": "atomic"})

    match_labels: dict[str, str] | None = Field(
        default=None,
        description="Map of {key,value} pairs, each equivalent to an In requirement with one value.",
    )
    match_expressions: Annotated[list[LabelSelectorRequirement], Atomic] | None = Field(
        default=None,
        description="A list of label selector requirements.",
    )


class Toleration(KubeModel):
    """Tolerates a taint that matches the triple <key,value,effect> using the operator."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                "value must be empty when operator is Exists",
                field_path=".value",
            ),
            Rule(
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                "tolerationSeconds requires effect NoExecute",
                field_path=".tolerationSeconds",
            ),
        )
    )

    key: str | None = Field(
        default=None,
        max_length=317,
        description="Taint key; empty with operator Exists matches all.",
    )
    operator: Literal["Equal", "Exists"] | None = Field(
        default=None,
        description="Exists or Equal (the default).",
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value, for operator Equal.")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None,
        description="Taint effect to match; empty matches all effects.",
    )
    toleration_seconds: NonNegInt64 | None = Field(
        default=None,
        description="How long a NoExecute taint is tolerated before eviction; unset means forever.",
    )


Tolerations = Annotated[list[Toleration], Field(max_length=64)]
"""A bounded toleration list (the bound keeps the CEL cost estimate within the API server's budget)."""


class Taint(KubeModel):
    """A taint on a member cluster (same shape as a node taint)."""

    key: str = Field(min_length=1, max_length=317, description="Taint key.")
    value: str | None = Field(default=None, max_length=63, description="Taint value.")
    effect: TaintEffect = Field(description="NoSchedule, PreferNoSchedule or NoExecute.")
    time_added: Timestamp | None = Field(
        default=None,
        description="When the taint was added (Flotilla's automatic taints always carry it).",
    )


class ObjectStatus(KubeModel):
    """Status fields every Flotilla kind has: conditions and the generation they describe."""

    observed_generation: NonNegInt64 | None = Field(
        default=None,
        description="The .metadata.generation the controller last acted on.",
    )
    conditions: Conditions | None = Field(default=None, description="Current state, as metav1.Conditions.")
