"""An in-memory API server behind the controllers' :class:`~flotilla.controllers.client.Client` interface.

Just enough of the real semantics for the controllers: resourceVersions from one counter,
``metadata.generation`` bumped when ``spec`` changes, the ``status`` subresource, merge patches
with a ``metadata.resourceVersion`` precondition (409 on conflict), server-side apply as
"merge the applied fields into the object", and watchers called on every change (like a watch).
Every write is counted, so tests can assert how many writes a flow costs.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiException

Obj = dict[str, Any]
Ref = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Serialise calls: controllers call the client from worker threads (asyncio.to_thread)."""

    @functools.wraps(method)
    def wrapper(self: FakeApiServer, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def _ref(obj: Obj) -> Ref:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])


class FakeApiServer:
    def __init__(self, name: str = "hub") -> None:
        self.name = name
        self.objects: dict[Ref, Obj] = {}
        self.writes: Counter[tuple[str, str]] = Counter()  # (verb, kind)
        self.watchers: list[Callable[[str, Obj], None]] = []
        self.fail: Callable[[str, Obj], Exception | None] = lambda _verb, _obj: None
        self._rv = itertools.count(1)
        self._uid = itertools.count(1)
        self.namespaces: set[str] = set()
        self.lock = threading.RLock()

    # -- helpers for tests -----------------------------------------------------------------
    def find(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj | None:
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def of_kind(self, kind: str) -> list[Obj]:
        return [copy.deepcopy(o) for r, o in sorted(self.objects.items()) if r[1] == kind]

    def total_writes(self, kind: str | None = None) -> int:
        return sum(n for (_verb, k), n in self.writes.items() if kind is None or k == kind)

    def _store(self, ref: Ref, obj: Obj, event: str) -> Obj:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[ref] = obj
        for watcher in list(self.watchers):
            watcher(event, copy.deepcopy(obj))
        return copy.deepcopy(obj)

    def _check(self, verb: str, obj: Obj) -> None:
        exc = self.fail(verb, obj)
        if exc is not None:
            raise exc
        self.writes[(verb, obj["kind"])] += 1

    # -- the Client interface ----------------------------------------------------------------
    @_locked
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return self.find(api_version, kind, name, namespace or "")

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        terms = [s.split("=", 1) for s in (label_selector or "").split(",") if s]
        wanted = {t[0]: t[1] for t in terms if len(t) == 2}
        present = [t[0] for t in terms if len(t) == 1]
        out = []
        for (av, k, ns, _n), obj in sorted(self.objects.items()):
            if (av, k) != (api_version, kind) or (namespace and ns != namespace):
                continue
            labels = obj["metadata"].get("labels") or {}
            if all(labels.get(a) == b for a, b in wanted.items()) and all(a in labels for a in present):
                out.append(copy.deepcopy(obj))
        return out

    @_locked
    def apply(self, obj: Obj, field_manager: str) -> Obj:
        self._check("apply", obj)
        ref = _ref(obj)
        current = self.objects.get(ref)
        if current is None:
            stored = copy.deepcopy(obj)
            stored["metadata"].update(uid=f"{self.name}-uid-{next(self._uid)}", generation=1)
            stored["metadata"] = {k: v for k, v in stored["metadata"].items() if v is not None}
            return self._store(ref, stored, "ADDED")
        updated = copy.deepcopy(current)
        for key, value in obj.items():
            if key == "metadata":
                for mkey, mvalue in value.items():
                    if isinstance(mvalue, dict) and isinstance(updated["metadata"].get(mkey), dict):
                        updated["metadata"][mkey] = {**updated["metadata"][mkey], **mvalue}
                    elif mvalue is not None:
                        updated["metadata"][mkey] = copy.deepcopy(mvalue)
            elif key != "status":
                updated[key] = copy.deepcopy(value)
        if updated == current:
            return copy.deepcopy(current)  # a no-op apply changes nothing, not even resourceVersion
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        return self._store(ref, updated, "MODIFIED")

    @_locked
    def create(self, obj: Obj, field_manager: str) -> Obj:
        if _ref(obj) in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        return self.apply(obj, field_manager)

    @_locked
    def patch(self, obj: Obj, body: Obj, subresource: str | None = None) -> Obj:
        ref = _ref(obj)
        current = self.objects.get(ref)
        if current is None:
            raise ApiException(status=404, reason="NotFound")
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
            self.writes[("conflict", current["kind"])] += 1
            raise ApiException(status=409, reason="Conflict")
        self._check("patch/status" if subresource == "status" else "patch", current)
        if subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = merge_patch(current.get("status") or {}, body.get("status") or {})
        else:
            body = {k: v for k, v in body.items() if k != "status"}
            meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "resourceVersion"}
            updated = merge_patch(current, {**body, "metadata": meta})
            if updated.get("spec") != current.get("spec"):
                updated["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        if updated == current:
            return copy.deepcopy(current)
        return self._store(ref, updated, "MODIFIED")

    @_locked
    def delete(self, obj: Obj) -> None:
        ref = _ref(obj)
        current = self.objects.pop(ref, None)
        if current is None:
            return
        self._check("delete", current)
        for watcher in list(self.watchers):
            watcher("DELETED", copy.deepcopy(current))

    def ensure_namespace(self, name: str) -> None:
        self.namespaces.add(name)
