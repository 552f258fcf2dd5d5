"""Watch the hub for workload kinds added by an InterpreterCustomization.

Kopf's handlers are declared at import time, so a kind that a user adds later (a RayCluster, an
in-house CRD) is watched here instead: one thread per kind runs list+watch on the hub and hands
every event to the same :meth:`Runtime.on_template` the built-in kinds use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from kubernetes.client import ApiException, Configuration

from flotilla import kube
from flotilla.inventory.client import MemberClient

log = logging.getLogger("flotilla")

OnEvent = Callable[[str | None, Mapping[str, Any]], Coroutine[Any, Any, None]]


class CustomKindWatch:
    """List+watch one kind on the hub in a thread; events go to ``on_event`` on ``loop``."""

    def __init__(
        self,
        configuration: Configuration,
        api_version: str,
        kind: str,
        on_event: OnEvent,
        loop: asyncio.AbstractEventLoop,
        hub: Any,
    ) -> None:
        self.api_version, self.kind = api_version, kind
        self._client = MemberClient(configuration)
        self._on_event, self._loop, self._hub = on_event, loop, hub
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._client.close()
        self._thread.join(timeout=5)

    def _dispatch(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        future = asyncio.run_coroutine_threadsafe(self._on_event(event_type, obj), self._loop)
        future.add_done_callback(self._log_failure)

    def _log_failure(self, future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("handling a %s event failed", self.kind, exc_info=future.exception())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                plural, _namespaced = kube.resolve(self._hub, self.api_version, self.kind)
                path = ("/apis/" if "/" in self.api_version else "/api/") + f"{self.api_version}/{plural}"
                listing = self._client.get(path)
                for item in listing.get("items") or ():
                    item.setdefault("apiVersion", self.api_version)
                    item.setdefault("kind", self.kind)
                    self._dispatch(None, item)
                version = listing["metadata"]["resourceVersion"]
                while not self._stop.is_set():
                    query = [
                        ("resourceVersion", version),
                        ("timeoutSeconds", "60"),
                        ("allowWatchBookmarks", "true"),
                    ]
                    for event in self._client.watch(path, query, timeout=90):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            raise ApiException(status=int(obj.get("code") or 500), reason=obj.get("message"))
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event.get("type") != "BOOKMARK":
                            self._dispatch(event.get("type"), obj)
            except LookupError:
                self._stop.wait(5)  # the kind is not served (yet): its CRD may be installed later
            except Exception as exc:  # re-list after any failure (410 Gone included), with a pause
                if self._stop.is_set():
                    return
                log.info("watch of %s %s restarts after: %s", self.api_version, self.kind, exc)
                self._stop.wait(1)
