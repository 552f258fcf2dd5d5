"""Watches of the copies Flotilla propagated: one label-filtered list+watch per member and kind.

Status, drift repair and orphan removal are driven by these watches, never by polling: a
change of a copy on a member (its status, a hand edit, a deletion) reaches the controllers as
the binding key named by the copy's ownership labels. Idle cost is zero; cost grows with
changes, not with objects.

Threads: one per (member, kind), named ``flotilla-copies-<member>-<kind>``. The cache they fill
is guarded by one lock; ``on_event(cluster, binding_key)`` is called on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client import ApiClient

from flotilla import metrics
from flotilla.controllers.hub_watch import ListWatch
from flotilla.interpreter.keys import (
    ANNOTATION_BINDING_NAME,
    LABEL_BINDING_NAME,
    LABEL_BINDING_NAMESPACE,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
)

log = logging.getLogger("flotilla")

Obj = dict[str, Any]
Key = tuple[str, str]
WatchKey = tuple[str, str, str]  # (cluster, apiVersion, kind)
CopyRef = tuple[str, str, str, str, str]  # (cluster, apiVersion, kind, namespace, name)
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}"


def binding_of(obj: Obj) -> Key | None:
    """The binding a copy belongs to: its ownership labels (the full name from the annotation
    when the name was too long for a label value)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = (meta.get("annotations") or {}).get(ANNOTATION_BINDING_NAME) or labels.get(LABEL_BINDING_NAME)
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY_VALUE or not name:
        return None
    return (labels.get(LABEL_BINDING_NAMESPACE) or "", name)


def _lite(obj: Obj) -> Obj:
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


class MemberCopies:
    def __init__(self, on_event: Callable[[str, Key], None], loop: asyncio.AbstractEventLoop) -> None:
        self._on_event = on_event
        self._loop = loop
        self._lock = threading.Lock()
        self._objects: dict[WatchKey, dict[Key, Obj]] = {}
        self._by_binding: dict[Key, set[CopyRef]] = {}
        self._synced: set[WatchKey] = set()
        self._watches: dict[WatchKey, ListWatch] = {}

    # -- reading (any thread) --------------------------------------------------------------
    def get(
        self, cluster: str, api_version: str, kind: str, namespace: str, name: str
    ) -> tuple[bool, Obj | None]:
        """``(known, copy)``: known is False until the watch of that member and kind has listed."""
        wkey = (cluster, api_version, kind)
        with self._lock:
            if wkey not in self._synced:
                return False, None
            return True, self._objects.get(wkey, {}).get((namespace, name))

    def copies_of(self, binding: Key) -> set[CopyRef]:
        with self._lock:
            return set(self._by_binding.get(binding, ()))

    # -- watches (event loop) ----------------------------------------------------------------
    def ensure(self, cluster: str, api: ApiClient, api_version: str, kind: str) -> None:
        """Start the watch of ``kind`` on ``cluster`` if it is not running (cheap when it is)."""
        wkey = (cluster, api_version, kind)
        current = self._watches.get(wkey)
        if current is not None and current.api is api:
            return
        if current is not None:  # the member's connection changed (new kubeconfig)
            current.stop(join=False)
        watch = ListWatch(
            api,
            api_version,
            kind,
            thread_name=f"flotilla-copies-{cluster}-{kind}",
            label_selector=SELECTOR,
            on_list=lambda items: self._replace(wkey, items),
            on_event=lambda event_type, obj: self._apply_event(wkey, event_type, obj),
            not_served_wait=30.0,
        )
        self._watches[wkey] = watch
        watch.start()

    def stop_cluster(self, cluster: str) -> None:
        for wkey in [w for w in self._watches if w[0] == cluster]:
            self._watches.pop(wkey).stop(join=False)
            self._replace(wkey, None)

    def stop_all(self) -> None:
        for wkey in list(self._watches):
            self._watches.pop(wkey).stop(join=False)

    # -- updates (watch threads) ----------------------------------------------------------------
    def _notify(self, cluster: str, keys: set[Key]) -> None:
        for key in keys:
            self._loop.call_soon_threadsafe(self._on_event, cluster, key)

    def _index(self, wkey: WatchKey, name: Key, obj: Obj | None, old: Obj | None) -> set[Key]:
        cluster, api_version, kind = wkey
        ref = (cluster, api_version, kind, name[0], name[1])
        touched = set()
        for body, add in ((old, False), (obj, True)):
            if body is None:
                continue
            bkey = binding_of(body)
            if bkey is None:
                continue
            touched.add(bkey)
            refs = self._by_binding.setdefault(bkey, set())
            if add:
                refs.add(ref)
            else:
                refs.discard(ref)
                if not refs:
                    del self._by_binding[bkey]
        return touched

    def _replace(self, wkey: WatchKey, items: list[Obj] | None) -> None:
        """A fresh list (None: the watch stopped and its objects are no longer known)."""
        with self._lock:
            old = self._objects.pop(wkey, {})
            touched: set[Key] = set()
            for name, body in old.items():
                touched |= self._index(wkey, name, None, body)
            if items is None:
                self._synced.discard(wkey)
            else:
                fresh = {}
                for item in items:
                    meta = item["metadata"]
                    name = (meta.get("namespace") or "", meta["name"])
                    fresh[name] = _lite(item)
                    touched |= self._index(wkey, name, fresh[name], None)
                self._objects[wkey] = fresh
                self._synced.add(wkey)
        self._notify(wkey[0], touched)

    def _apply_event(self, wkey: WatchKey, event_type: str, obj: Obj) -> None:
        meta = obj["metadata"]
        name = (meta.get("namespace") or "", meta["name"])
        with self._lock:
            bucket = self._objects.setdefault(wkey, {})
            old = bucket.pop(name, None)
            new = None if event_type == "DELETED" else _lite(obj)
            if new is not None:
                bucket[name] = new
            touched = self._index(wkey, name, new, old)
        metrics.MEMBER_WATCH_EVENTS.labels(cluster=wkey[0]).inc()
        self._notify(wkey[0], touched)
