"""Detector: workload template + policies -> the ResourceBinding that should exist.

The detector computes the binding; the scheduling controller writes it (with its decision, in
one write) only when it differs from the cached one.

Keyed by template ``(apiVersion, kind, namespace, name)``. Policy claims follow Karmada: the
policy recorded in the binding's ``spec.policyRef`` keeps the workload while it still matches;
another policy takes it over only when it has ``preemption: Always`` and a higher priority (or
is a namespaced PropagationPolicy preempting a ClusterPropagationPolicy). A takeover posts an
Event on both policies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from flotilla import API_GROUP, metrics
from flotilla.controllers.client import Client
from flotilla.controllers.common import EmitEvent
from flotilla.controllers.hubstate import HubState, Key, TemplateKey
from flotilla.controllers.matching import MATCH_NONE, PolicyRef, best_policy, policy_strength
from flotilla.controllers.workloads import (
    BINDING_API_VERSION,
    binding_is_current,
    binding_name,
    desired_binding,
    pod_group_name,
)
from flotilla.interpreter import InterpreterRegistry

log = logging.getLogger("flotilla")


def _policy_key(ref: Mapping[str, Any]) -> str:
    return f"{ref.get('kind')}/{ref.get('namespace') or ''}/{ref.get('name')}"


def preempts(candidate: PolicyRef, claimed: PolicyRef) -> bool:
    """Whether ``candidate`` may take a workload over from the policy that claims it (Karmada rules)."""
    if (candidate.spec.get("preemption") or "Never") != "Always":
        return False
    if candidate.kind == "PropagationPolicy" and claimed.kind == "ClusterPropagationPolicy":
        return True
    if candidate.kind == "ClusterPropagationPolicy" and claimed.kind == "PropagationPolicy":
        return False
    return candidate.priority > claimed.priority


class Detector:
    def __init__(
        self,
        hub: Client,
        state: HubState,
        registry: InterpreterRegistry,
        emit: EmitEvent,
        on_binding_changed: Callable[[Key], None],
        on_desired: Callable[[Key, dict[str, Any]], None],
        hold_back: bool = True,
    ) -> None:
        self.hub, self.state, self.registry, self.emit = hub, state, registry, emit
        self.on_binding_changed = on_binding_changed
        self.on_desired = on_desired
        self.hold_back = hold_back

    def choose_policy(
        self, template: Mapping[str, Any], existing: Mapping[str, Any] | None
    ) -> PolicyRef | None:
        best = best_policy(self.state.policies.values(), template)
        ref = ((existing or {}).get("spec") or {}).get("policyRef")
        if not ref:
            return best
        claimed = self.state.policies.get(_policy_key(ref))
        if claimed is None or policy_strength(claimed, template) == MATCH_NONE:
            return best  # the claiming policy is gone or no longer matches: free to re-match
        if best is None or best.key == claimed.key or not preempts(best, claimed):
            return claimed
        meta = template["metadata"]
        what = f"{template['kind']} {meta.get('namespace') or ''}/{meta['name']}".replace(" /", " ")
        message = (
            f"{what} taken over by {best.kind} {best.name} (priority {best.priority}, preemption Always)"
        )
        for policy in (claimed, best):
            self.emit(
                {
                    "apiVersion": BINDING_API_VERSION,
                    "kind": policy.kind,
                    "metadata": {"name": policy.name, "namespace": policy.namespace},
                },
                "Normal",
                "PreemptionSucceeded" if policy is best else "Preempted",
                message,
            )
        return best

    async def reconcile(self, key: TemplateKey) -> None:
        api_version, kind, ns, name = key
        bkey: Key = (ns, binding_name(kind, name))
        existing = self.state.bindings.get(bkey)
        template = self.state.templates.get(key)
        if template is None or template["metadata"].get("deletionTimestamp"):
            if existing is not None:
                await self._delete(existing)
            return
        interpreter = self.registry.get(api_version, kind)
        if interpreter is None:
            return
        if (template["metadata"].get("labels") or {}).get(f"{API_GROUP}/managed-by"):
            return  # a copy Flotilla itself made (hub used as a member): never re-propagate
        policy = self.choose_policy(template, existing)
        if policy is None:
            if existing is not None:
                await self._delete(existing)
            return
        if self.hold_back:
            patch = interpreter.hold_back_patch(template)
            if patch:
                template = await asyncio.to_thread(self.hub.patch, template, patch)
                metrics.HUB_WRITES.labels(controller="detector", kind=kind).inc()
                self.state.put_template(template)
        try:  # (an unreadable template, e.g. an invalid quantity, is told once, not retried)
            components = interpreter.components(template)
            group = pod_group_name(template, components)
            pod_group = self.state.pod_groups.get((ns, group)) if group else None
            desired = desired_binding(template, policy, interpreter, pod_group)
        except ValueError as exc:
            self.emit(template, "Warning", "InvalidWorkload", str(exc))
            return
        if binding_is_current(existing, desired):
            self.on_binding_changed(bkey)  # propagation looks at the (maybe new) template
        else:
            # The scheduling controller writes it, with a decision when its inputs are new: the
            # binding and its decision are one write.
            self.on_desired(bkey, desired)

    async def _delete(self, binding: Mapping[str, Any]) -> None:
        stub = {
            "apiVersion": BINDING_API_VERSION,
            "kind": "ResourceBinding",
            "metadata": {
                "name": binding["metadata"]["name"],
                "namespace": binding["metadata"].get("namespace"),
            },
        }
        await asyncio.to_thread(self.hub.delete, stub)
        metrics.HUB_WRITES.labels(controller="detector", kind="ResourceBinding").inc()
