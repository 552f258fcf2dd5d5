"""Building blocks shared by every Flotilla custom resource model.

The models here are plain pydantic v2 models (no Kopf or Kubernetes client imports). Field names are
snake_case in Python and camelCase on the wire; ``Model.model_validate(body)`` accepts a whole
Kubernetes object dict, and ``model_dump()`` writes camelCase.

Kubernetes-specific schema facts (int32/int64 formats, CEL rules, list types) are attached with the
:class:`Schema` marker or ``json_schema_extra`` so that they sit next to the field they constrain;
:mod:`flotilla.api.schema` turns the pydantic JSON schema into a structural OpenAPI v3 schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from flotilla import API_GROUP, API_VERSION

GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
CATEGORY = "flotilla"


# --------------------------------------------------------------------------------------------------
# Schema markers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """Annotated marker adding OpenAPI keys (``format``, ``x-kubernetes-*``) to a field's schema.

    ``x_kubernetes_list_type=...`` is spelled ``x-kubernetes-list-type`` in the schema. The keys are
    kept as JSON text so the marker stays hashable (``typing`` hashes ``Annotated`` metadata).
    """

    keys_json: str

    def __init__(self, **keys: Any) -> None:
        renamed = {k.replace("_", "-") if k.startswith("x_") else k: v for k, v in keys.items()}
        object.__setattr__(self, "keys_json", json.dumps(renamed, sort_keys=True))

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        schema.update(json.loads(self.keys_json))
        return schema


@dataclass(frozen=True)
class Rule:
    """One CEL rule for ``x-kubernetes-validations`` (see the Kubernetes CRD validation rules)."""

    rule: str
    message: str
    field_path: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def cel(*rules: Rule) -> dict[str, Any]:
    """``json_schema_extra`` value carrying CEL rules, for ``Field(...)`` or ``ConfigDict(...)``."""
    return {"x-kubernetes-validations": [r.to_json() for r in rules]}


def immutable(what: str) -> dict[str, Any]:
    """``json_schema_extra`` making a field immutable once set (a CEL transition rule)."""
    return cel(Rule("self == oldSelf", f"{what} is immutable"))


Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1), Schema(format="int32")]
Int64 = Annotated[int, Schema(format="int64")]
NonNegInt32 = Annotated[int, Field(ge=0, le=2**31 - 1), Schema(format="int32")]
NonNegInt64 = Annotated[int, Field(ge=0), Schema(format="int64")]

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""The Kubernetes quantity grammar, exactly as in the upstream CRDs."""
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not _QUANTITY_RE.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return value


Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
"""A Kubernetes resource quantity (``8``, ``"500m"``, ``"80Gi"``), stored as int-or-string."""

ResourceList = Annotated[
    dict[str, Quantity],
    Field(max_length=64),
]
"""Resource name -> quantity, e.g. ``{"nvidia.com/gpu": 8, "memory": "1Ti"}``."""


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]
"""A metav1.Time: RFC 3339 on the wire (``2025-01-02T03:04:05Z``)."""

JsonObject = Annotated[dict[str, Any], Schema(x_kubernetes_preserve_unknown_fields=True)]
"""A free-form JSON object kept as is by the API server."""


# --------------------------------------------------------------------------------------------------
# Base models
# --------------------------------------------------------------------------------------------------


class KubeModel(BaseModel):
    """Base of every API model: camelCase on the wire, populate by Python name too, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    def to_json(self) -> dict[str, Any]:
        """The object as a JSON-ready camelCase dict with only the fields that were set (not None).

        Defaults are left to the API server, which applies the same ones from the CRD schema.
        """
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


class ObjectMeta(KubeModel):
    """The parts of metav1.ObjectMeta Flotilla reads."""

    name: str | None = Field(default=None, description="Object name.")
    generate_name: str | None = Field(default=None, description="Name prefix for server-generated names.")
    namespace: str | None = Field(default=None, description="Namespace, for namespaced objects.")
    uid: str | None = Field(default=None, description="Unique id assigned by the API server.")
    resource_version: str | None = Field(default=None, description="Opaque version for optimistic locking.")
    generation: int | None = Field(default=None, description="Sequence number of spec changes.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    finalizers: list[str] = Field(default_factory=list, description="Finalizers.")
    owner_references: list[dict[str, Any]] = Field(default_factory=list, description="Owner references.")
    creation_timestamp: Timestamp | None = Field(default=None, description="Creation time.")
    deletion_timestamp: Timestamp | None = Field(default=None, description="Deletion request time.")


PrinterType = Literal["integer", "number", "string", "boolean", "date"]


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    json_path: str
    type: PrinterType = "string"
    description: str = ""
    priority: int = 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE = PrinterColumn("AGE", ".metadata.creationTimestamp", "date", "Time since the object was created.")


def condition_column(name: str, condition_type: str, priority: int = 0) -> PrinterColumn:
    """A printer column showing the status of one condition, as Karmada and Kueue do."""
    return PrinterColumn(
        name,
        f'.status.conditions[?(@.type=="{condition_type}")].status',
        "string",
        f"Status of the {condition_type} condition.",
        priority,
    )


@dataclass(frozen=True)
class CrdInfo:
    """What the generator needs besides the schema: names, scope, columns, subresources."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    printer_columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = (CATEGORY,)
    scale: dict[str, str] | None = None
    extra_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def name(self) -> str:
        """``<plural>.<group>``, the CRD's metadata.name."""
        return f"{self.plural}.{API_GROUP}"


class KubeResource(KubeModel):
    """A whole Kubernetes object of one of our kinds; subclasses add ``spec`` and ``status``."""

    crd: ClassVar[CrdInfo]

    api_version: str = Field(default=GROUP_VERSION, description="APIVersion of the object.")
    kind: str = Field(default="", description="Kind of the object.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard object metadata.")

    def model_post_init(self, context: Any, /) -> None:
        # Assigning marks both as set, so to_json() always writes apiVersion and kind.
        self.kind = self.kind or self.crd.kind
        self.api_version = self.api_version

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Self:
        """Parse a whole Kubernetes object (a dict, or a Kopf ``Body`` mapping view)."""
        return cls.model_validate(_plain(body))


def _plain(value: Any) -> Any:
    """Copy nested Mapping views (e.g. Kopf bodies) into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
