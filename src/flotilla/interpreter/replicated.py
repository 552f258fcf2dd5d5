"""Shared base for kinds that are N copies of one pod template at ``.spec.replicas``/``.spec.template``."""

from __future__ import annotations

from flotilla.interpreter.base import BaseInterpreter, Component, Obj, component_from_template

__all__ = ["ReplicatedPodInterpreter"]


class ReplicatedPodInterpreter(BaseInterpreter):
    """One component named ``main``; divisible on ``.spec.replicas`` (default 1)."""

    divisible = True
    replica_path = ".spec.replicas"

    def components(self, obj: Obj) -> list[Component]:
        """One component: ``spec.replicas`` pods of ``spec.template``."""
        replicas = self.replicas(obj) or 0
        template = (obj.get("spec") or {}).get("template")
        return [component_from_template("main", replicas, template, per_replica=1)]
