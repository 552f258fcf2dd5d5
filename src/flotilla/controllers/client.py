"""The small client interface every controller uses for the hub and the members.

Controllers never touch ``kubernetes.client`` directly: they call these blocking methods from
worker threads (``asyncio.to_thread``). :class:`KubeClient` is the real one (every call has a
timeout, lists paginate); unit tests use an in-memory fake with the same methods. The
controllers' member clients are wrapped in :class:`MeteredClient`, the one place member requests
are timed and their errors counted (:func:`failure_reason` names them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kubernetes.client import ApiClient, ApiException
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)

from flotilla import kube, metrics

T = TypeVar("T")

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


CLIENT_ERRORS: tuple[type[BaseException], ...] = (ApiException, LookupError, OSError, HTTPError)
"""What a client call raises when the API server refuses or cannot be reached (urllib3's
``HTTPError`` is not an ``OSError``: a refused connection arrives as ``MaxRetryError``)."""

_STATUS_REASONS = {
    400: "Rejected",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "Timeout",
    409: "Conflict",
    422: "Invalid",
    429: "Throttled",
    504: "Timeout",
}


def failure_reason(exc: BaseException) -> str:
    """A short CamelCase reason for a failed client call (a metric label, never a message)."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        if status in _STATUS_REASONS:
            return _STATUS_REASONS[status]
        return "ServerError" if status >= 500 else "Rejected" if status else "Error"
    if isinstance(exc, LookupError):
        return "NotServed"  # the API server does not serve the kind (CRD not installed there)
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, NewConnectionError):  # (a ConnectTimeoutError subclass: refused, unresolvable)
        return "Unreachable"
    if isinstance(exc, TimeoutError | ConnectTimeoutError | ReadTimeoutError):
        return "Timeout"
    if isinstance(exc, OSError | HTTPError):
        return "Unreachable"
    return "Error"


class MeteredClient:
    """A member's :class:`Client` whose every call is timed and, when it fails, counted by reason:
    ``flotilla_member_api_request_duration_seconds{cluster,verb}`` and
    ``flotilla_member_api_errors_total{cluster,verb,reason}``."""

    def __init__(self, inner: Client, cluster: str) -> None:
        self.inner, self.cluster = inner, cluster
        self._timers = {
            verb: metrics.MEMBER_API_DURATION.labels(cluster=cluster, verb=verb)
            for verb in ("get", "list", "apply", "create", "patch", "delete")
        }

    def _call(self, verb: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return call()
        except Exception as exc:
            reason = failure_reason(exc)
            metrics.MEMBER_API_ERRORS.labels(cluster=self.cluster, verb=verb, reason=reason).inc()
            raise
        finally:
            self._timers[verb].observe(time.perf_counter() - started)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return self._call("get", lambda: self.inner.get(api_version, kind, name, namespace))

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        return self._call("list", lambda: self.inner.list(api_version, kind, namespace, label_selector))

    def apply(self, obj: Obj, field_manager: str) -> Obj:
        return self._call("apply", lambda: self.inner.apply(obj, field_manager))

    def create(self, obj: Obj, field_manager: str) -> Obj:
        return self._call("create", lambda: self.inner.create(obj, field_manager))

    def patch(self, obj: Obj, body: Obj, subresource: str | None = None) -> Obj:
        return self._call("patch", lambda: self.inner.patch(obj, body, subresource))

    def delete(self, obj: Obj) -> None:
        self._call("delete", lambda: self.inner.delete(obj))

    def ensure_namespace(self, name: str) -> None:
        self._call("apply", lambda: self.inner.ensure_namespace(name))
