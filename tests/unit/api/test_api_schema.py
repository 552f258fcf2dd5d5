"""The structural-schema conversion and checker, and the properties every generated CRD must have."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from flotilla.api.base import Quantity
from flotilla.api.gen import RESOURCES, build_crd, openapi_schema
from flotilla.api.schema import (
    SchemaError,
    cel_problems,
    field_paths,
    missing_descriptions,
    structural_problems,
    to_structural,
)

KIND_IDS = [cls.crd.kind for cls in RESOURCES]
KARMADA_SHORT_NAMES = {"pp", "cpp", "op", "cop", "rb", "crb", "wk", "fhpa", "frq", "cluster", "pg", "pgs"}


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    nodes = [(path or "<root>", schema)]
    for name, sub in schema.get("properties", {}).items():
        nodes += _walk(sub, f"{path}.{name}")
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(schema.get(key), dict):
            nodes += _walk(schema[key], path + suffix)
    return nodes


# --- the checker itself catches what it must --------------------------------------------------------

BAD_SCHEMAS = [
    ({"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}, "not allowed"),
    ({"type": "object", "properties": {"a": {"description": "no type"}}}, "missing type"),
    ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}, "anyOf"),
    ({"type": "object", "properties": {"a": {"type": "string", "title": "A"}}}, "'title'"),
    ({"type": "object", "properties": {"a": {"type": "array"}}}, "array without items"),
    (
        {"type": "object", "properties": {"a": {"type": "object", "additionalProperties": True}}},
        "must be a schema",
    ),
    (
        {"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True, "type": "string"}}},
        "must not set type",
    ),
    (
        {
            "type": "object",
            "properties": {
                "a": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["k"],
                }
            },
        },
        "must be required or defaulted",
    ),
    ({"type": "object", "properties": {"metadata": {"type": "object", "description": "x"}}}, "metadata"),
    (
        {"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-validations": [{}]}}},
        "rule and message",
    ),
]


@pytest.mark.parametrize(("schema", "expected"), BAD_SCHEMAS)
def test_checker_reports_non_structural_schemas(schema: dict[str, Any], expected: str) -> None:
    problems = structural_problems(schema)
    assert problems, schema
    assert any(expected in p for p in problems), problems


def test_checker_accepts_the_structural_forms() -> None:
    schema = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    assert structural_problems(schema) == []


def test_cel_keyword_fields_must_be_escaped() -> None:
    bad = {"type": "object", "x-kubernetes-validations": [{"rule": "self.namespace == 'a'", "message": "m"}]}
    good = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "self.__namespace__ == 'a'", "message": "m"}],
    }
    assert cel_problems(bad) and "__namespace__" in cel_problems(bad)[0]
    assert cel_problems(good) == []


def test_conversion_inlines_refs_collapses_optional_and_merges_rules() -> None:
    class Inner(BaseModel):
        """Inner doc."""

        model_config = {"json_schema_extra": {"x-kubernetes-validations": [{"rule": "a", "message": "m"}]}}
        x: int = 0

    class Outer(BaseModel):
        inner: Inner | None = Field(
            default=None,
            description="field doc",
            json_schema_extra={"x-kubernetes-validations": [{"rule": "b", "message": "m"}]},
        )
        qty: Quantity | None = None

    schema = to_structural(Outer.model_json_schema())
    inner = schema["properties"]["inner"]
    assert inner["description"] == "field doc"
    assert inner["type"] == "object"
    assert [r["rule"] for r in inner["x-kubernetes-validations"]] == ["a", "b"]
    assert schema["properties"]["qty"]["x-kubernetes-int-or-string"] is True
    assert "$defs" not in schema and "title" not in schema
    assert structural_problems(schema) == []


def test_conversion_refuses_real_unions() -> None:
    class Bad(BaseModel):
        v: int | list[int]

    with pytest.raises(SchemaError, match="unions"):
        to_structural(Bad.model_json_schema())


# --- every generated CRD ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", RESOURCES, ids=KIND_IDS)
def test_generated_schema_is_structural_and_documented(cls: Any) -> None:
    schema = openapi_schema(cls)
    assert structural_problems(schema) == []
    assert cel_problems(schema) == []
    assert missing_descriptions(schema) == [".metadata"]  # the API server forbids a description there
    for where, node in _walk(schema):
        assert "$ref" not in node and "$defs" not in node and "title" not in node, where
        if node.get("type") == "integer":
            assert node.get("format") in (None, "int32", "int64"), where
        if "default" in node:
            assert node["default"] is not None, where


@pytest.mark.parametrize("cls", RESOURCES, ids=KIND_IDS)
def test_crd_envelope(cls: Any) -> None:
    crd = build_crd(cls)
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.flotilla.dev"
    assert spec["group"] == "flotilla.dev"
    assert spec["names"]["categories"] == ["flotilla"]
    assert not set(spec["names"]["shortNames"]) & KARMADA_SHORT_NAMES
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    columns = version["additionalPrinterColumns"]
    assert columns[-1] == {
        "name": "AGE",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since the object was created.",
    }
    root = version["schema"]["openAPIV3Schema"]
    status = root["properties"]["status"]["properties"]
    assert status["observedGeneration"]["format"] == "int64"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    }


def test_short_names_are_unique() -> None:
    names = [n for cls in RESOURCES for n in cls.crd.short_names]
    assert len(names) == len(set(names)) == len(RESOURCES)


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("MemberCluster", ["READY", "GPUS FREE", "GPUS TOTAL", "GPU MODELS", "AGE"]),
        ("ResourceBinding", ["SCHEDULED", "CLUSTERS", "APPLIED", "AGE"]),
        ("PodGroup", ["PHASE", "MINMEMBER", "CLUSTER", "AGE"]),
        ("PropagationPolicy", ["PRIORITY", "AGE"]),
        ("ClusterPropagationPolicy", ["PRIORITY", "AGE"]),
        ("FederatedResourceQuota", ["OVERALL", "OVERALL_USED", "AGE"]),
    ],
)
def test_default_printer_columns(kind: str, columns: list[str]) -> None:
    cls = next(c for c in RESOURCES if c.crd.kind == kind)
    shown = [
        c["name"]
        for c in build_crd(cls)["spec"]["versions"][0]["additionalPrinterColumns"]
        if "priority" not in c
    ]
    assert shown == columns


def test_every_printer_column_path_exists_in_the_schema() -> None:
    for cls in RESOURCES:
        paths = set(field_paths(openapi_schema(cls))) | {".metadata.creationTimestamp"}
        for column in cls.crd.printer_columns:
            path = column.json_path.split("[?", 1)[0].replace("\\.", "~")
            path = path.split(".nvidia~com/gpu")[0]
            assert path in paths, f"{cls.crd.kind} column {column.name}: {column.json_path}"


def test_quantities_are_int_or_string() -> None:
    from flotilla.api.quota import FederatedResourceQuota

    overall = openapi_schema(FederatedResourceQuota)["properties"]["spec"]["properties"]["overall"]
    value = overall["additionalProperties"]
    assert value["x-kubernetes-int-or-string"] is True
    assert value["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "type" not in value


def test_free_form_fields_preserve_unknown_fields() -> None:
    from flotilla.api.binding import ResourceBinding

    status = openapi_schema(ResourceBinding)["properties"]["status"]["properties"]
    assert status["explanation"] == {
        "description": status["explanation"]["description"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert status["aggregatedStatus"]["items"]["properties"]["status"]["x-kubernetes-preserve-unknown-fields"]
