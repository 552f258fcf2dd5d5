"""InterpreterCustomization: teach Flotilla a workload kind with paths instead of Python.

Paths are a JSONPath subset: dot-separated field names with optional list indexes, e.g.
``.spec.replicas`` or ``.spec.workerGroupSpecs[0].template``; component paths may also use ``[*]``
(every element). :data:`PATH_PATTERN` and :data:`COMPONENT_PATH_PATTERN` are the exact grammar;
the API server checks it with CEL ``matches()`` and the models check it in Python.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from flotilla.api.base import (
    AGE,
    CrdInfo,
    KubeModel,
    KubeResource,
    NonNegInt32,
    PrinterColumn,
    Rule,
    Schema,
    cel,
)
from flotilla.api.meta import ObjectStatus

_SEGMENT = r"\.[A-Za-z_][A-Za-z0-9_-]*"
PATH_PATTERN = rf"^({_SEGMENT}(\[[0-9]+\])*)+$"
"""A field path: ``.a.b[0].c``."""
COMPONENT_PATH_PATTERN = rf"^({_SEGMENT}(\[([0-9]+|\*)\])*)+$"
"""A field path that may also use ``[*]``: ``.spec.replicatedJobs[*].replicas``."""
MAX_PATH_LENGTH = 256

AggregationOperation = Literal["Sum", "Max", "Min", "All", "Any", "First"]


def _checker(pattern: str, what: str) -> AfterValidator:
    """Python-side check of a path against ``pattern``."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not a valid {what} (expected e.g. .spec.replicas)")
        return value

    return AfterValidator(check)


def _cel_matches(pattern: str, what: str) -> Schema:
    """API-server-side check of a path: a CEL ``matches()`` rule with the same regex."""
    cel_pattern = pattern.replace("\\", "\\\\")
    rule = Rule(f"self.matches('{cel_pattern}')", f"must be a {what} such as .spec.replicas")
    return Schema(**cel(rule))


_LENGTH = Field(min_length=1, max_length=MAX_PATH_LENGTH)
FieldPath = Annotated[
    str, _LENGTH, _checker(PATH_PATTERN, "field path"), _cel_matches(PATH_PATTERN, "field path")
]
ComponentPath = Annotated[
    str,
    _LENGTH,
    _checker(COMPONENT_PATH_PATTERN, "field path"),
    _cel_matches(COMPONENT_PATH_PATTERN, "field path ([*] allowed)"),
]


class Target(KubeModel):
    """The kind this customization interprets."""

    api_version: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^([a-z0-9.-]+/)?v[0-9]+((alpha|beta)[0-9]+)?$",
        description="API version, e.g. ray.io/v1.",
    )
    kind: str = Field(
        min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$", description="Kind, e.g. RayCluster."
    )


class CustomizationComponent(KubeModel):
    """One role of the workload: how many replicas and which pod template."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            Rule(
                "has(self.replicas) != has(self.replicasPath)",
                "exactly one of replicas or replicasPath must be set",
                field_path=".replicasPath",
            )
        )
    )

    name: str = Field(min_length=1, max_length=63, description="Role name, e.g. head or workers.")
    replicas: NonNegInt32 | None = Field(default=None, description="A fixed replica count.")
    replicas_path: ComponentPath | None = Field(
        default=None,
        description="Path of the replica count; with [*] the values are summed.",
    )
    pod_template_path: ComponentPath = Field(
        description="Path of the PodTemplateSpec whose containers' requests are one replica's needs.",
    )


class StatusAggregation(KubeModel):
    """How one status field of the member copies is combined onto the hub template."""

    path: FieldPath = Field(description="Path in the object, e.g. .status.readyReplicas.")
    operation: AggregationOperation = Field(description="Sum, Max, Min, All, Any or First.")


class HealthRule(KubeModel):
    """How to tell a member copy is healthy."""

    path: FieldPath = Field(description="Path of the value, e.g. .status.state.")
    healthy_values: Annotated[list[str], Field(min_length=1, max_length=16)] = Field(
        description="Values (as strings) that mean healthy, e.g. [ready].",
    )


class InterpreterCustomizationSpec(KubeModel):
    """Paths that describe the kind's replicas, templates, retained fields, status and health."""

    target: Target = Field(description="The kind.")
    components: Annotated[
        list[CustomizationComponent],
        Field(min_length=1, max_length=16),
        Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]),
    ] = Field(description="Roles of the workload (at least one).")
    replica_path: FieldPath | None = Field(
        default=None,
        description="The field revised when replicas are Divided across clusters.",
    )
    suspend_path: FieldPath | None = Field(
        default=None,
        description="A boolean field the suspend fallback sets on the hub (like Job spec.suspend), "
        "used only when the webhook's hub hold is off (FLOTILLA_HOLD_BACK); the hub hold gates pods.",
    )
    retain_paths: Annotated[list[FieldPath], Field(max_length=32)] | None = Field(
        default=None,
        description="Fields owned by the member, kept when Flotilla updates its copy.",
    )
    status_paths: Annotated[list[FieldPath], Field(max_length=32)] | None = Field(
        default=None,
        description="Status fields collected from members into the ResourceBinding.",
    )
    status_aggregation: (
        Annotated[
            list[StatusAggregation],
            Field(max_length=32),
            Schema(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["path"]),
        ]
        | None
    ) = Field(default=None, description="How status fields are combined onto the template.")
    health: HealthRule | None = Field(default=None, description="Health rule; unset means always healthy.")


class InterpreterCustomization(KubeResource):
    """A declarative interpreter for one workload kind."""

    crd = CrdInfo(
        "InterpreterCustomization",
        "interpretercustomizations",
        ("fic",),
        "Cluster",
        (
            PrinterColumn(
                "TARGET-API-VERSION", ".spec.target.apiVersion", "string", "Interpreted API version."
            ),
            PrinterColumn("TARGET-KIND", ".spec.target.kind", "string", "Interpreted kind."),
            AGE,
        ),
    )

    spec: InterpreterCustomizationSpec = Field(description="The paths.")
    status: ObjectStatus | None = Field(default=None, description="Observed state.")
