"""The operator's read cache of the hub (an informer cache): templates, policies, PodGroups, bindings.

Written only on the event loop, by the watch handlers (and by a controller with the object a
write of its own returned); controllers read it and never mutate what they read. Memory is only
a cache of the API: a cold start rebuilds it from the hub's lists and watches.

A binding or template event whose resourceVersion is not newer than the cached one (typically
the echo of a write the operator made itself) is recognised and costs no reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flotilla.controllers.matching import PolicyRef, policy_from_body

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
TemplateKey = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)


def object_key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def template_key(body: Mapping[str, Any]) -> TemplateKey:
    meta = body["metadata"]
    return (str(body["apiVersion"]), str(body["kind"]), meta.get("namespace") or "", meta["name"])


def binding_template_key(binding: Mapping[str, Any]) -> TemplateKey:
    """The key of the template a binding was made for (``spec.resource``)."""
    r = (binding.get("spec") or {}).get("resource") or {}
    return (str(r.get("apiVersion")), str(r.get("kind")), r.get("namespace") or "", str(r.get("name")))


def newer(candidate: Mapping[str, Any], current: Mapping[str, Any] | None) -> bool:
    """Whether ``candidate`` is a later version of the object than ``current``.

    resourceVersions are opaque by contract, but every API server backed by etcd issues
    increasing integers; where either one is not an integer, any difference counts as newer."""
    if current is None:
        return True
    a = str(candidate.get("metadata", {}).get("resourceVersion") or "")
    b = str(current.get("metadata", {}).get("resourceVersion") or "")
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return a != b


def _template_inputs(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the detector and propagation read of a template (status changes are not in it)."""
    meta = body.get("metadata") or {}
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("labels"),
        meta.get("annotations"),
        meta.get("deletionTimestamp"),
        body.get("spec"),
    )


@dataclass
class HubState:
    templates: dict[TemplateKey, Obj] = field(default_factory=dict)
    policies: dict[str, PolicyRef] = field(default_factory=dict)
    pod_groups: dict[Key, Obj] = field(default_factory=dict)
    bindings: dict[Key, Obj] = field(default_factory=dict)
    _status_locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    _writing: dict[Key, int] = field(default_factory=dict)

    # -- templates ------------------------------------------------------------------------
    def put_template(self, body: Mapping[str, Any]) -> bool:
        """Cache a template; True when something the controllers read changed."""
        key = template_key(body)
        current = self.templates.get(key)
        if current is not None and not newer(body, current):
            return False
        self.templates[key] = dict(body)
        return current is None or _template_inputs(current) != _template_inputs(body)

    def drop_template(self, key: TemplateKey) -> None:
        self.templates.pop(key, None)

    # -- policies and groups --------------------------------------------------------------
    def put_policy(self, body: Mapping[str, Any]) -> PolicyRef:
        policy = policy_from_body(body)
        self.policies[policy.key] = policy
        return policy

    def drop_policy(self, body: Mapping[str, Any]) -> PolicyRef:
        policy = policy_from_body(body)
        self.policies.pop(policy.key, None)
        return policy

    def put_pod_group(self, body: Mapping[str, Any]) -> None:
        self.pod_groups[object_key(body)] = dict(body)

    def drop_pod_group(self, key: Key) -> None:
        self.pod_groups.pop(key, None)

    # -- bindings -------------------------------------------------------------------------
    def put_binding(self, body: Mapping[str, Any]) -> bool:
        """Cache a binding if it is newer than the cached one; True if it was."""
        key = object_key(body)
        if not newer(body, self.bindings.get(key)):
            return False
        obj = dict(body)
        obj.setdefault("apiVersion", "flotilla.dev/v1alpha1")
        obj.setdefault("kind", "ResourceBinding")
        self.bindings[key] = obj
        return True

    def drop_binding(self, key: Key) -> Obj | None:
        lock = self._status_locks.get(key)
        if lock is not None and not lock.locked():
            del self._status_locks[key]
        return self.bindings.pop(key, None)

    @contextlib.contextmanager
    def writing(self, key: Key) -> Iterator[None]:
        """Around a controller's own write of a binding: its watch echo can arrive before the
        write's answer does, and must not start the other controllers on a half-known state
        (the writer caches the answer and tells the others itself)."""
        self._writing[key] = self._writing.get(key, 0) + 1
        try:
            yield
        finally:
            self._writing[key] -= 1
            if not self._writing[key]:
                del self._writing[key]

    def being_written(self, key: Key) -> bool:
        return key in self._writing

    def status_lock(self, key: Key) -> asyncio.Lock:
        """Held by whoever writes the binding's status (propagation, status): each write starts
        from the latest cached binding, so the two never overwrite each other or conflict."""
        lock = self._status_locks.get(key)
        if lock is None:
            lock = self._status_locks[key] = asyncio.Lock()
        return lock

    def bindings_on(self, cluster: str) -> Iterator[Key]:
        """Bindings that target ``cluster`` or record a copy applied there."""
        for key, binding in list(self.bindings.items()):
            if cluster in targets(binding) or cluster in applied_clusters(binding):
                yield key

    def template_of(self, binding: Mapping[str, Any]) -> Obj | None:
        return self.templates.get(binding_template_key(binding))


def targets(binding: Mapping[str, Any]) -> dict[str, int | None]:
    """The decision: ``{cluster: replicas or None}``."""
    return {c["name"]: c.get("replicas") for c in (binding.get("spec") or {}).get("clusters") or ()}


def status_items(binding: Mapping[str, Any]) -> dict[str, Obj]:
    """``status.aggregatedStatus`` by cluster."""
    return {s["clusterName"]: dict(s) for s in (binding.get("status") or {}).get("aggregatedStatus") or ()}


def applied_clusters(binding: Mapping[str, Any]) -> set[str]:
    """Clusters where the binding's status records a copy (applied, or still to be removed)."""
    return set(status_items(binding))
