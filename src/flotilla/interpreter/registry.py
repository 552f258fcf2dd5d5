"""Which interpreter handles which kind: the built-ins plus declarative customizations.

Matching: built-ins match on API group + kind, for the versions whose field layout they were
written against (``Interpreter.versions``: apps/v1, batch/v1, jobset.x-k8s.io/v1alpha2,
kubeflow.org/v1, serving.kserve.io/v1beta1, leaderworkerset.x-k8s.io/v1, ray.io/v1 and v1alpha1,
the versions the upstream CRDs serve with the same layout). A customization matches its exact
target apiVersion + kind and takes precedence over a built-in, as Karmada's
ResourceInterpreterCustomization does. Registering a customization for a target that already has
one replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.interpreter.base import BaseInterpreter, Interpreter
from flotilla.interpreter.declarative import DeclarativeInterpreter, split_api_version
from flotilla.interpreter.deployment import DeploymentInterpreter
from flotilla.interpreter.inferenceservice import InferenceServiceInterpreter
from flotilla.interpreter.job import JobInterpreter
from flotilla.interpreter.jobset import JobSetInterpreter
from flotilla.interpreter.leaderworkerset import LeaderWorkerSetInterpreter
from flotilla.interpreter.pytorchjob import PyTorchJobInterpreter
from flotilla.interpreter.rayjob import RayJobInterpreter
from flotilla.interpreter.statefulset import StatefulSetInterpreter

__all__ = ["BUILTIN_INTERPRETERS", "InterpreterRegistry"]

BUILTIN_INTERPRETERS: tuple[type[BaseInterpreter], ...] = (
    DeploymentInterpreter,
    StatefulSetInterpreter,
    JobInterpreter,
    JobSetInterpreter,
    PyTorchJobInterpreter,
    InferenceServiceInterpreter,
    LeaderWorkerSetInterpreter,
    RayJobInterpreter,
)


class InterpreterRegistry:
    """Look up the interpreter for an ``(apiVersion, kind)``."""

    def __init__(self, builtins: Iterable[BaseInterpreter] | None = None) -> None:
        interpreters = [cls() for cls in BUILTIN_INTERPRETERS] if builtins is None else list(builtins)
        self._builtins: dict[tuple[str, str], BaseInterpreter] = {(i.group, i.kind): i for i in interpreters}
        self._custom: dict[tuple[str, str, str], DeclarativeInterpreter] = {}

    def get(self, api_version: str, kind: str) -> Interpreter | None:
        """The customization for exactly this apiVersion+kind, else a built-in for group+kind and version."""
        group, version = split_api_version(api_version)
        custom = self._custom.get((group, version, kind))
        if custom is not None:
            return custom
        builtin = self._builtins.get((group, kind))
        if builtin is not None and version in builtin.versions:
            return builtin
        return None

    def register_customization(self, spec: Mapping[str, Any]) -> DeclarativeInterpreter:
        """Build (validating ``spec``; ValueError when invalid) and register a declarative interpreter."""
        interpreter = DeclarativeInterpreter(spec)
        self._custom[(interpreter.group, interpreter.version, interpreter.kind)] = interpreter
        return interpreter

    def unregister(self, api_version: str, kind: str) -> bool:
        """Drop the customization for this apiVersion+kind (built-ins stay); True if there was one."""
        group, version = split_api_version(api_version)
        return self._custom.pop((group, version, kind), None) is not None

    def known(self) -> list[tuple[str, str]]:
        """``(group/versions, kind)`` of everything registered, built-ins first, for display."""
        out = [(f"{i.group}/{','.join(sorted(i.versions))}", i.kind) for i in self._builtins.values()]
        out += [(c.api_version, c.kind) for c in self._custom.values()]
        return out
