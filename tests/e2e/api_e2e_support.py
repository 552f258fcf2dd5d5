"""Helpers for the tests/e2e/test_api_*.py files: installing CRDs and expecting rejections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import ApiClient, ApiException, CustomObjectsApi

from flotilla.api.paths import repo_root
from flotilla.rig import kube

REPO = repo_root()
OUR_CRDS = sorted((REPO / "crds").glob("*.flotilla.dev.yaml"))


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def error_message(exc: ApiException) -> str:
    """The API server's Status message (falls back to the raw body)."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def create(api: ApiClient, obj: dict[str, Any]) -> dict[str, Any]:
    """Create (POST) one custom object, like ``kubectl create``."""
    group, _, version = obj["apiVersion"].rpartition("/")
    plural, namespaced = kube.resolve(api, obj["apiVersion"], obj["kind"])
    objects = CustomObjectsApi(api)
    if namespaced:
        namespace = obj["metadata"]["namespace"]
        result: dict[str, Any] = objects.create_namespaced_custom_object(
            group, version, namespace, plural, obj
        )
    else:
        result = objects.create_cluster_custom_object(group, version, plural, obj)
    return result


def apply_expecting_rejection(api: ApiClient, obj: dict[str, Any], verb: str = "apply") -> tuple[int, str]:
    """Apply (or create) ``obj``; return (status, message) of the rejection. Accepted objects are deleted."""
    try:
        (create if verb == "create" else kube.apply)(api, obj)
    except ApiException as exc:
        return exc.status, error_message(exc)
    kube.delete(api, obj)
    return 200, "accepted"


def with_api_version(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    """A deep copy of ``obj`` with only apiVersion changed."""
    copy: dict[str, Any] = json.loads(json.dumps(obj))
    copy["apiVersion"] = api_version
    return copy
