"""admission.k8s.io/v1 AdmissionReview: the request a webhook receives and the response it returns."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass(frozen=True)
class GroupVersionResource:
    group: str
    version: str
    resource: str


@dataclass(frozen=True)
class AdmissionRequest:
    """The ``request`` of an AdmissionReview.

    ``kind``/``resource`` are those of the object as sent to the webhook (after the API server's
    conversion for ``matchPolicy: Equivalent``); ``sub_resource`` is e.g. ``"scale"`` or ``""``.
    ``name`` is ``""`` for a CREATE whose name the server generates; ``namespace`` is ``""`` for
    cluster-scoped objects. ``user`` is ``userInfo.username``."""

    uid: str
    kind: GroupVersionKind
    resource: GroupVersionResource
    namespace: str
    name: str
    operation: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool
    user: str
    sub_resource: str = ""

    @classmethod
    def from_review(cls, review: Any) -> AdmissionRequest:
        """Parse an ``admission.k8s.io/v1`` AdmissionReview; ValueError says what is wrong with it."""
        if not isinstance(review, Mapping):
            raise ValueError("an AdmissionReview must be a JSON object")
        api_version, kind = review.get("apiVersion"), review.get("kind")
        if api_version != API_VERSION or kind != KIND:
            raise ValueError(f"expected apiVersion {API_VERSION} kind {KIND}, got {api_version} {kind}")
        request = review.get("request")
        if not isinstance(request, Mapping):
            raise ValueError("the AdmissionReview has no request object")
        uid = request.get("uid")
        if not isinstance(uid, str) or not uid:
            raise ValueError("request.uid is missing")
        operation = request.get("operation")
        if operation not in OPERATIONS:
            raise ValueError(f"request.operation must be one of {', '.join(OPERATIONS)}, not {operation!r}")
        gvk = _fields(request, "kind", ("group", "version", "kind"))
        gvr = _fields(request, "resource", ("group", "version", "resource"))
        user_info = request.get("userInfo") or {}
        if not isinstance(user_info, Mapping):
            raise ValueError("request.userInfo must be an object")
        dry_run = request.get("dryRun", False)
        if not isinstance(dry_run, bool):
            raise ValueError("request.dryRun must be a boolean")
        return cls(
            uid=uid,
            kind=GroupVersionKind(*gvk),
            resource=GroupVersionResource(*gvr),
            namespace=_string(request, "namespace"),
            name=_string(request, "name"),
            operation=operation,
            object=_object(request, "object"),
            old_object=_object(request, "oldObject"),
            dry_run=dry_run,
            user=_string(user_info, "username", "request.userInfo.username"),
            sub_resource=_string(request, "subResource"),
        )


@dataclass(frozen=True)
class AdmissionResponse:
    """A webhook's answer. ``code``/``reason``/``message`` reach the client only when denied
    (``kubectl`` prints ``admission webhook "..." denied the request: <message>``). ``patch`` is a
    JSON Patch (RFC 6902) a mutating webhook applies to an allowed object."""

    allowed: bool
    message: str = ""
    code: int = 403
    reason: str = "Forbidden"
    warnings: tuple[str, ...] = ()
    patch: tuple[dict[str, Any], ...] = ()

    @classmethod
    def allow(
        cls, warnings: tuple[str, ...] = (), patch: tuple[dict[str, Any], ...] = ()
    ) -> AdmissionResponse:
        return cls(allowed=True, warnings=warnings, patch=patch)

    @classmethod
    def deny(cls, message: str, *, code: int = 403, reason: str = "Forbidden") -> AdmissionResponse:
        return cls(allowed=False, message=message, code=code, reason=reason)

    def to_review(self, uid: str) -> dict[str, Any]:
        """The AdmissionReview answering the request ``uid``."""
        response: dict[str, Any] = {"uid": uid, "allowed": self.allowed}
        if not self.allowed:
            response["status"] = {"code": self.code, "message": self.message, "reason": self.reason}
        if self.warnings:
            response["warnings"] = list(self.warnings)
        if self.allowed and self.patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(list(self.patch)).encode()).decode()
        return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def _string(doc: Mapping[str, Any], key: str, where: str | None = None) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where or 'request.' + key} must be a string")
    return value


def _fields(request: Mapping[str, Any], key: str, names: tuple[str, str, str]) -> tuple[str, str, str]:
    doc = request.get(key)
    if not isinstance(doc, Mapping):
        raise ValueError(f"request.{key} is missing")
    group, version, last = (_string(doc, n, f"request.{key}.{n}") for n in names)
    if not version or not last:
        raise ValueError(f"request.{key} needs {names[1]} and {names[2]}")
    return group, version, last


def _object(request: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"request.{key} must be an object")
    return value
