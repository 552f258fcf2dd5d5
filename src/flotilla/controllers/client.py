"""The small client interface every controller uses for the hub and the members.

Controllers never touch ``kubernetes.client`` directly: they call these blocking methods from
worker threads (``asyncio.to_thread``). :class:`KubeClient` is the real one (every call has a
timeout, lists paginate); unit tests use an in-memory fake with the same methods.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubernetes.client import ApiClient

from flotilla import kube

Obj = dict[str, Any]


class Client(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]: ...

    def apply(self, obj: Obj, field_manager: str) -> Obj: ...

    def create(self, obj: Obj, field_manager: str) -> Obj:
        """POST; an existing object answers 409."""
        ...

    def patch(self, obj: Obj, body: Obj, subresource: str | None = None) -> Obj:
        """A JSON merge patch; ``metadata.resourceVersion`` in ``body`` is a precondition (409)."""
        ...

    def delete(self, obj: Obj) -> None:
        """Delete (absent is fine)."""
        ...

    def ensure_namespace(self, name: str) -> None: ...


class KubeClient:
    """:class:`Client` over a ``kubernetes.client.ApiClient`` (see :mod:`flotilla.kube`)."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return kube.get(self.api, api_version, kind, name, namespace)

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        items = kube.list_objects(self.api, api_version, kind, namespace, label_selector)
        for item in items:  # a list's items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def apply(self, obj: Obj, field_manager: str) -> Obj:
        return kube.apply(self.api, obj, field_manager)

    def create(self, obj: Obj, field_manager: str) -> Obj:
        result: Obj = kube.request(
            self.api,
            "POST",
            kube.object_path(self.api, obj, with_name=False),
            obj,
            "application/json",
            [("fieldManager", field_manager)],
        )
        return result

    def patch(self, obj: Obj, body: Obj, subresource: str | None = None) -> Obj:
        return kube.patch(self.api, obj, body, subresource)

    def delete(self, obj: Obj) -> None:
        kube.delete(self.api, obj)

    def ensure_namespace(self, name: str) -> None:
        kube.ensure_namespace(self.api, name)
