"""An interpreter built from an ``InterpreterCustomization`` spec: a kind added without Python.

Spec fields (all paths use :mod:`flotilla.interpreter.paths`)::

    target:            {apiVersion, kind}
    components:        [{name, replicas: int  XOR  replicasPath, podTemplatePath}]
    replicaPath:       optional; the field revised when replicas are Divided (makes the kind divisible)
    suspendPath:       optional; boolean field the suspend fallback sets (only without the hub hold)
    retainPaths:       [path]  member-owned fields kept on update
    statusPaths:       [path]  under .status, reflected per cluster
    statusAggregation: [{path, operation: Sum|Max|Min|All|Any|First}]  under .status
    health:            {path, healthyValues: [string]}

Semantics chosen here:

* A replica count read from a path that is absent is 1 (the Kubernetes default for ``replicas``).
* ``[*]`` in ``podTemplatePath`` yields one component per list element, named ``<name>-<index>``
  (``<name>-<i>-<j>`` for nested wildcards); ``replicasPath`` is expanded with the same indices
  and must then have the same number of wildcards (or none, to share one count).
* A component whose pod template is absent in an object is left out (an optional role).
* With ``replicaPath``, components whose ``replicasPath`` is that path scale with Division
  (``per_replica = 1``); others are fixed per member copy. Without it the kind goes whole to one
  cluster and is a gang of all its pods.
* Health: absent value -> UNKNOWN; a value whose text (booleans as ``true``/``false`` or
  ``True``/``False``) is in ``healthyValues`` -> HEALTHY; anything else -> UNHEALTHY.
* Aggregation skips clusters that do not report the path; a rule nobody reports is left out.
  Sum/Max/Min take numbers, All/Any booleans, First the value of the first cluster by name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flotilla.interpreter.base import (
    BaseInterpreter,
    Component,
    Health,
    Obj,
    as_int,
    component_from_template,
    retain_paths,
)
from flotilla.interpreter.paths import Index, Key, Path, Wildcard, expand_path, get_path, parse_path, set_path

__all__ = ["AGGREGATIONS", "DeclarativeInterpreter", "split_api_version"]


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` -> ``("apps", "v1")``; ``"v1"`` -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _numbers(values: list[Any]) -> list[int | float]:
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _booleans(values: list[Any]) -> list[bool]:
    return [v for v in values if isinstance(v, bool)]


def _sum(values: list[Any]) -> Any:
    numbers = _numbers(values)
    return sum(numbers) if numbers else None


def _max(values: list[Any]) -> Any:
    numbers = _numbers(values)
    return max(numbers) if numbers else None


def _min(values: list[Any]) -> Any:
    numbers = _numbers(values)
    return min(numbers) if numbers else None


def _all(values: list[Any]) -> Any:
    flags = _booleans(values)
    return all(flags) if flags else None


def _any(values: list[Any]) -> Any:
    flags = _booleans(values)
    return any(flags) if flags else None


def _first(values: list[Any]) -> Any:
    return copy.deepcopy(values[0]) if values else None


AGGREGATIONS: dict[str, Callable[[list[Any]], Any]] = {
    "Sum": _sum,
    "Max": _max,
    "Min": _min,
    "All": _all,
    "Any": _any,
    "First": _first,
}
"""Aggregation operations by name; each takes the reported values in cluster-name order."""


@dataclass(frozen=True)
class _ComponentRule:
    name: str
    pod_template: Path
    replicas: int | None
    replicas_path: Path | None


@dataclass(frozen=True)
class _AggregationRule:
    path: Path
    operation: Callable[[list[Any]], Any]


def _field(spec: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in spec or spec[key] is None:
        raise ValueError(f"{where}.{key} is required")
    return spec[key]


def _path(value: Any, where: str, *, plain: bool = False, status: bool = False) -> Path:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a path string, got {value!r}")
    parsed = parse_path(value)
    if plain and not parsed.is_plain:
        raise ValueError(f"{where} {value!r} may only use .key and [index] segments")
    if status and not parsed.startswith("status"):
        raise ValueError(f"{where} {value!r} must start with .status")
    return parsed


class DeclarativeInterpreter(BaseInterpreter):
    """An interpreter driven by an InterpreterCustomization ``spec`` (validated on construction)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        target = _field(spec, "target", "spec")
        self.api_version = str(_field(target, "apiVersion", "spec.target"))
        self.kind = str(_field(target, "kind", "spec.target"))
        self.group, self.version = split_api_version(self.api_version)
        self.versions = frozenset({self.version})
        self._components = [
            self._component_rule(c, f"spec.components[{i}]")
            for i, c in enumerate(spec.get("components") or [])
        ]
        if not self._components:
            raise ValueError("spec.components must list at least one component")
        names = [c.name for c in self._components]
        if len(set(names)) != len(names):
            raise ValueError(f"spec.components names must be unique, got {names}")
        replica_path = spec.get("replicaPath")
        self._replica_path = (
            None if replica_path is None else _path(replica_path, "spec.replicaPath", plain=True)
        )
        self.replica_path = replica_path
        self.divisible = self._replica_path is not None
        suspend_path = spec.get("suspendPath")
        if suspend_path is not None:
            _path(suspend_path, "spec.suspendPath", plain=True)
        self.suspend_path = suspend_path
        self._retain = [
            _path(p, f"spec.retainPaths[{i}]", plain=True)
            for i, p in enumerate(spec.get("retainPaths") or [])
        ]
        self._status = [
            _path(p, f"spec.statusPaths[{i}]", plain=True, status=True)
            for i, p in enumerate(spec.get("statusPaths") or [])
        ]
        self._aggregations = [
            self._aggregation_rule(rule, f"spec.statusAggregation[{i}]")
            for i, rule in enumerate(spec.get("statusAggregation") or [])
        ]
        health = spec.get("health")
        self._health_path: Path | None = None
        self._healthy: frozenset[str] = frozenset()
        if health is not None:
            self._health_path = _path(_field(health, "path", "spec.health"), "spec.health.path")
            if self._health_path.wildcards:
                raise ValueError("spec.health.path cannot use [*]")
            self._healthy = frozenset(str(v) for v in health.get("healthyValues") or [])

    @staticmethod
    def _component_rule(spec: Mapping[str, Any], where: str) -> _ComponentRule:
        name = str(_field(spec, "name", where))
        template = _path(_field(spec, "podTemplatePath", where), f"{where}.podTemplatePath")
        has_fixed, has_path = spec.get("replicas") is not None, spec.get("replicasPath") is not None
        if has_fixed == has_path:
            raise ValueError(f"{where} needs exactly one of replicas and replicasPath")
        replicas_path = None
        replicas = None
        if has_path:
            replicas_path = _path(spec["replicasPath"], f"{where}.replicasPath")
            if replicas_path.wildcards not in (0, template.wildcards):
                raise ValueError(
                    f"{where}.replicasPath {spec['replicasPath']!r} has {replicas_path.wildcards} [*] but "
                    f"podTemplatePath has {template.wildcards}; they expand in lockstep"
                )
        else:
            replicas = as_int(spec["replicas"], f"{where}.replicas")
        for p in (template, replicas_path):
            if p is not None and not all(isinstance(s, Key | Index | Wildcard) for s in p.segments):
                raise ValueError(f"{where} path {p.text!r} may only use .key, [index] and [*] segments")
        return _ComponentRule(name, template, replicas, replicas_path)

    @staticmethod
    def _aggregation_rule(spec: Mapping[str, Any], where: str) -> _AggregationRule:
        path = _path(_field(spec, "path", where), f"{where}.path", status=True)
        if len(path.segments) < 2 or not all(isinstance(s, Key) for s in path.segments):
            raise ValueError(
                f"{where}.path {path.text!r} must name a field under .status using .key segments only"
            )
        operation = _field(spec, "operation", where)
        if operation not in AGGREGATIONS:
            raise ValueError(f"{where}.operation must be one of {sorted(AGGREGATIONS)}, got {operation!r}")
        return _AggregationRule(path, AGGREGATIONS[operation])

    # -- components ------------------------------------------------------------------------

    def components(self, obj: Obj) -> list[Component]:
        """One component per rule, or per list element for ``[*]`` rules."""
        out = []
        for rule in self._components:
            for indices, template_path in expand_path(obj, rule.pod_template):
                name = "-".join([rule.name, *map(str, indices)])
                replicas = self._rule_replicas(obj, rule, indices)
                scales = self._replica_path is not None and rule.replicas_path is not None
                per_replica = 1 if scales and str(rule.replicas_path) == str(self._replica_path) else 0
                template = get_path(obj, template_path)
                out.append(component_from_template(name, replicas, template, per_replica=per_replica))
        return out

    @staticmethod
    def _rule_replicas(obj: Obj, rule: _ComponentRule, indices: tuple[int, ...]) -> int:
        if rule.replicas_path is None:
            return rule.replicas or 0
        path = (
            rule.replicas_path.with_indices(indices) if rule.replicas_path.wildcards else rule.replicas_path
        )
        return as_int(get_path(obj, path, 1), str(path))

    # -- propagation -----------------------------------------------------------------------

    def retain(self, desired: Obj, observed: Obj) -> dict[str, Any]:
        """Copy every ``retainPaths`` value the member has into the desired object."""
        out = super().retain(desired, observed)
        retain_paths(out, observed, self._retain)
        return out

    # -- status ----------------------------------------------------------------------------

    def reflect_status(self, member_obj: Obj) -> dict[str, Any]:
        """The ``statusPaths`` values the member reports, as a status subtree."""
        out: dict[str, Any] = {}
        for path in self._status:
            value = get_path(member_obj, path)
            if value is not None:
                set_path(out, path, copy.deepcopy(value))
        status: dict[str, Any] = out.get("status") or {}
        return status

    def aggregate_status(self, per_cluster: Mapping[str, Obj]) -> dict[str, Any]:
        """Apply every ``statusAggregation`` rule over the reflected statuses."""
        out: dict[str, Any] = {}
        for rule in self._aggregations:
            relative = rule.path.relative_to("status")
            values = [get_path(per_cluster[c], relative) for c in sorted(per_cluster)]
            result = rule.operation([v for v in values if v is not None])
            if result is not None:
                set_path(out, relative, result)
        return out

    def health(self, member_obj: Obj) -> Health:
        """HEALTHY when the value at ``health.path`` is one of ``healthyValues``; UNKNOWN when absent."""
        if self._health_path is None:
            return Health.UNKNOWN
        value = get_path(member_obj, self._health_path)
        if value is None:
            return Health.UNKNOWN
        texts = {str(value), "true" if value is True else "false" if value is False else str(value)}
        return Health.HEALTHY if texts & self._healthy else Health.UNHEALTHY
