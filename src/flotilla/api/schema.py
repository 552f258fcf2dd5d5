"""Turn pydantic's JSON schema into a structural OpenAPI v3 schema, and check structural-ness.

What :func:`to_structural` does to pydantic's output:

* inlines every ``$ref`` (no ``$defs`` remain) and merges the referring node's keys over it;
* collapses ``anyOf: [X, {type: null}]`` (``Optional``) into ``X``;
* keeps ``anyOf: [{type: integer}, {type: string}]`` only next to ``x-kubernetes-int-or-string``;
* turns ``const`` into a one-value ``enum`` and adds ``type`` to enums that lack it;
* turns ``additionalProperties: true`` into ``x-kubernetes-preserve-unknown-fields`` and drops
  ``additionalProperties: false``;
* drops ``title``, ``default: null`` and other keys Kubernetes does not know;
* concatenates ``x-kubernetes-validations`` declared on a model and on a field using it.

:func:`structural_problems` lists every way a schema breaks the Kubernetes structural rules
(see "Specifying a structural schema" in the CRD docs); the generator refuses to write a CRD that
has any.
"""

from __future__ import annotations

import copy
import re
from typing import Any

JsonDict = dict[str, Any]

ALLOWED_KEYS = frozenset(
    {
        "type",
        "format",
        "description",
        "default",
        "maximum",
        "minimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "multipleOf",
        "enum",
        "maxProperties",
        "minProperties",
        "required",
        "items",
        "anyOf",
        "properties",
        "additionalProperties",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)
"""Keys our generated schemas may use (a subset of apiextensions/v1 JSONSchemaProps)."""

_DROP = frozenset({"title", "examples", "discriminator", "readOnly", "writeOnly", "deprecated"})
_MERGED_LISTS = frozenset({"x-kubernetes-validations"})
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]
_VALID_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})


class SchemaError(ValueError):
    """pydantic produced something that has no structural equivalent."""


def to_structural(schema: JsonDict) -> JsonDict:
    """The structural OpenAPI v3 equivalent of a pydantic ``model_json_schema()`` result."""
    defs: JsonDict = schema.get("$defs", {})
    root = {k: v for k, v in schema.items() if k != "$defs"}
    return _convert(root, defs, "")


def _merge(base: JsonDict, over: JsonDict) -> JsonDict:
    out = dict(base)
    for key, value in over.items():
        if key in _MERGED_LISTS and key in out:
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out


def _convert(node: JsonDict, defs: JsonDict, path: str) -> JsonDict:
    node = copy.deepcopy(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        if name not in defs:
            raise SchemaError(f"{path or '<root>'}: unknown $ref {name}")
        node = _merge(_convert(defs[name], defs, path), _convert_local(node, defs, path))
        return node
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{path or '<root>'}: allOf with {len(parts)} parts is not supported")
        return _merge(_convert(parts[0], defs, path), _convert_local(node, defs, path))
    for combinator in ("anyOf", "oneOf"):
        if combinator in node and not node.get("x-kubernetes-int-or-string"):
            options = [o for o in node.pop(combinator) if o != {"type": "null"}]
            if len(options) != 1:
                raise SchemaError(f"{path or '<root>'}: unions other than Optional[X] are not structural")
            return _merge(_convert(options[0], defs, path), _convert_local(node, defs, path))
    return _convert_local(node, defs, path)


def _convert_local(node: JsonDict, defs: JsonDict, path: str) -> JsonDict:
    """Convert the keys of one node (no $ref/allOf/Optional left at this level)."""
    out: JsonDict = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in sorted(value.items())}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs, f"{path}{{}}")
        elif key == "anyOf" and node.get("x-kubernetes-int-or-string"):
            out[key] = list(_INT_OR_STRING)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        kinds = {type(v) for v in out["enum"]}
        if kinds == {str}:
            out["type"] = "string"
        elif kinds <= {int}:
            out["type"] = "integer"
        else:
            raise SchemaError(f"{path or '<root>'}: enum mixes value types {kinds}")
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out and "properties" in out:
        out["type"] = "object"
    unknown = set(out) - ALLOWED_KEYS
    if unknown:
        raise SchemaError(f"{path or '<root>'}: keys {sorted(unknown)} are not allowed in a CRD schema")
    return out


def structural_problems(schema: JsonDict, path: str = "") -> list[str]:
    """Every violation of the Kubernetes structural-schema rules under ``schema`` (empty: structural)."""
    problems: list[str] = []
    where = path or "<root>"
    int_or_string = bool(schema.get("x-kubernetes-int-or-string"))
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    for key in sorted(set(schema) - ALLOWED_KEYS):
        problems.append(f"{where}: key {key!r} is not allowed (e.g. $ref, $defs, title)")
    type_ = schema.get("type")
    if type_ is None and not (int_or_string or preserve):
        problems.append(f"{where}: missing type")
    if type_ is not None and type_ not in _VALID_TYPES:
        problems.append(f"{where}: invalid type {type_!r}")
    if int_or_string and type_ is not None:
        problems.append(f"{where}: x-kubernetes-int-or-string must not set type")
    if "anyOf" in schema and not (int_or_string and schema["anyOf"] == _INT_OR_STRING):
        problems.append(f"{where}: anyOf is only allowed as the int-or-string pair")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if schema.get("additionalProperties") is False or schema.get("additionalProperties") is True:
        problems.append(f"{where}: additionalProperties must be a schema")
    if type_ == "array" and "items" not in schema:
        problems.append(f"{where}: array without items")
    # The root metadata is the exception: the API server validates it itself.
    if (
        type_ == "object"
        and not ({"properties", "additionalProperties"} & set(schema) or preserve)
        and (path != ".metadata")
    ):
        problems.append(f"{where}: object without properties would prune everything")
    if "nullable" in schema:
        problems.append(f"{where}: nullable is not used; optional fields are simply not required")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{where}: required field {name!r} is not a property")
    if path == ".metadata" and set(schema) != {"type"}:
        problems.append(f"{where}: the root metadata may only say type: object")
    problems.extend(_list_type_problems(schema, where))
    for rule in schema.get("x-kubernetes-validations", []):
        if not isinstance(rule, dict) or not rule.get("rule") or not rule.get("message"):
            problems.append(f"{where}: x-kubernetes-validations entries need rule and message")
    for name, sub in schema.get("properties", {}).items():
        problems.extend(structural_problems(sub, f"{path}.{name}"))
    if isinstance(schema.get("items"), dict):
        problems.extend(structural_problems(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(structural_problems(schema["additionalProperties"], f"{path}{{}}"))
    return problems


def _list_type_problems(schema: JsonDict, where: str) -> list[str]:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type is None:
        return (
            [f"{where}: x-kubernetes-list-map-keys without list-type map"]
            if ("x-kubernetes-list-map-keys" in schema)
            else []
        )
    if schema.get("type") != "array":
        return [f"{where}: x-kubernetes-list-type on a non-array"]
    if list_type not in ("atomic", "set", "map"):
        return [f"{where}: invalid x-kubernetes-list-type {list_type!r}"]
    if list_type != "map":
        return []
    items = schema["items"]
    keys = schema.get("x-kubernetes-list-map-keys") or []
    problems = [] if keys else [f"{where}: list-type map needs x-kubernetes-list-map-keys"]
    for key in keys:
        prop = items.get("properties", {}).get(key)
        if prop is None:
            problems.append(f"{where}: map key {key!r} is not an item property")
        elif key not in items.get("required", []) and "default" not in prop:
            problems.append(f"{where}: map key {key!r} must be required or defaulted")
        elif prop.get("type") not in ("string", "integer", "boolean"):
            problems.append(f"{where}: map key {key!r} must be a scalar")
    return problems


CEL_RESERVED = frozenset(
    # CEL keywords; a field with such a name is spelled __name__ in Kubernetes CEL rules.
    [
        *("true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function"),
        *("if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"),
    ]
)
_CEL_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)\b")


def cel_problems(schema: JsonDict, path: str = "") -> list[str]:
    """CEL rules that select a field named like a CEL keyword without Kubernetes' ``__x__`` escape."""
    problems: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        for name in _CEL_FIELD.findall(rule.get("rule", "")):
            if name in CEL_RESERVED:
                problems.append(f"{path or '<root>'}: rule uses .{name}; write .__{name}__ instead")
    for name, sub in schema.get("properties", {}).items():
        problems.extend(cel_problems(sub, f"{path}.{name}"))
    if isinstance(schema.get("items"), dict):
        problems.extend(cel_problems(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(cel_problems(schema["additionalProperties"], f"{path}{{}}"))
    return problems


def missing_descriptions(schema: JsonDict, path: str = "") -> list[str]:
    """Property paths that have no description (every field of ours should say what it is)."""
    missing: list[str] = []
    for name, sub in schema.get("properties", {}).items():
        if not sub.get("description"):
            missing.append(f"{path}.{name}")
        missing.extend(missing_descriptions(sub, f"{path}.{name}"))
    if isinstance(schema.get("items"), dict):
        missing.extend(missing_descriptions(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        missing.extend(missing_descriptions(schema["additionalProperties"], f"{path}{{}}"))
    return missing


def field_paths(schema: JsonDict, path: str = "") -> list[str]:
    """Every field path in a schema, as ``.spec.a[].b`` (maps show as ``{}``), depth first."""
    paths: list[str] = []
    for name, sub in schema.get("properties", {}).items():
        paths.append(f"{path}.{name}")
        paths.extend(field_paths(sub, f"{path}.{name}"))
    if isinstance(schema.get("items"), dict):
        paths.extend(field_paths(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        paths.extend(field_paths(schema["additionalProperties"], f"{path}{{}}"))
    return paths
