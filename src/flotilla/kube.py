"""Small, synchronous helpers over ``kubernetes.client.ApiClient`` (operator, rig, tests, demo).

``apply`` is real server-side apply (``application/apply-patch+yaml``); kinds are resolved
through API discovery, which is re-read when a kind is not found (e.g. a CRD installed a moment
ago). Rejections surface as ``kubernetes.client.ApiException`` with the API server's message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes.client import ApiClient, ApiException

T = TypeVar("T")

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
"""(connect, read) seconds of every call: a member or hub that hangs cannot hold a thread."""
LIST_PAGE = 500

_discovery: dict[tuple[int, str], dict[str, tuple[str, bool]]] = {}


def group_path(api_version: str) -> str:
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


def request(
    api: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    content_type: str | None = None,
    query: list[tuple[str, str]] | None = None,
    timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
) -> Any:
    """One REST call; non-2xx answers raise ``ApiException`` carrying the server's Status body.

    ``timeout`` is (connect, read) seconds, or one number for both."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    method, url, headers, body, _ = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
    response.read()
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)
    return json.loads(response.data) if response.data else None


def resolve(api: ApiClient, api_version: str, kind: str) -> tuple[str, bool]:
    """(plural, namespaced) of a kind, from discovery (cached per client, refreshed on a miss)."""
    key = (id(api), api_version)
    for attempt in range(2):
        table = _discovery.get(key)
        if table is None or attempt == 1:
            try:
                doc = request(api, "GET", group_path(api_version))
            except ApiException as exc:
                if exc.status == 404:
                    table = {}
                else:
                    raise
            else:
                table = {
                    r["kind"]: (r["name"], bool(r["namespaced"]))
                    for r in doc.get("resources", [])
                    if "/" not in r["name"]
                }
            _discovery[key] = table
        if kind in table:
            return table[kind]
    raise LookupError(f"the API server does not serve {kind} in {api_version}")


def object_path(api: ApiClient, obj: dict[str, Any], *, with_name: bool = True) -> str:
    plural, namespaced = resolve(api, obj["apiVersion"], obj["kind"])
    meta = obj.get("metadata", {})
    base = group_path(obj["apiVersion"])
    if namespaced:
        base += f"/namespaces/{meta.get('namespace') or 'default'}"
    base += f"/{plural}"
    if with_name:
        base += f"/{meta['name']}"
    return base


def apply(
    api: ApiClient,
    obj: dict[str, Any],
    field_manager: str = "flotilla-test",
    force: bool = True,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Server-side apply one object and return what the API server stored."""
    query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
    if dry_run:
        query.append(("dryRun", "All"))
    result: dict[str, Any] = request(
        api,
        "PATCH",
        object_path(api, obj),
        body=json.dumps(obj),
        content_type="application/apply-patch+yaml",
        query=query,
    )
    return result


def get(
    api: ApiClient, api_version: str, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
    try:
        result: dict[str, Any] = request(api, "GET", object_path(api, obj))
        return result
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_objects(
    api: ApiClient,
    api_version: str,
    kind: str,
    namespace: str | None = None,
    label_selector: str | None = None,
) -> list[dict[str, Any]]:
    plural, namespaced = resolve(api, api_version, kind)
    path = group_path(api_version)
    if namespaced and namespace:
        path += f"/namespaces/{namespace}"
    query = [("labelSelector", label_selector)] if label_selector else []
    items: list[dict[str, Any]] = []
    token = ""
    while True:  # paginated: a large list never arrives as one huge answer
        page = [*query, ("limit", str(LIST_PAGE))] + ([("continue", token)] if token else [])
        doc = request(api, "GET", f"{path}/{plural}", query=page)
        items += doc.get("items") or []
        token = (doc.get("metadata") or {}).get("continue") or ""
        if not token:
            return items


def delete(api: ApiClient, obj: dict[str, Any], wait: float = 0.0) -> None:
    """Delete an object (absent is fine); with ``wait`` > 0, wait until it is gone."""
    try:
        request(api, "DELETE", object_path(api, obj), query=[("propagationPolicy", "Background")])
    except ApiException as exc:
        if exc.status != 404:
            raise
    if wait > 0:
        meta = obj["metadata"]
        wait_for(
            lambda: get(api, obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is None,
            timeout=wait,
            what=f"{obj['kind']} {meta['name']} to be deleted",
        )


def load_manifests(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def ensure_namespace(api: ApiClient, name: str) -> None:
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def install_crds(api: ApiClient, paths: Iterable[Path], timeout: float = 60.0) -> list[str]:
    """Server-side apply CRD files and wait until each is Established; returns their names."""
    names: list[str] = []
    for path in paths:
        for doc in load_manifests(Path(path)):
            apply(api, doc, field_manager="flotilla-rig")
            names.append(doc["metadata"]["name"])

    def established() -> bool:
        for name in names:
            crd = get(api, "apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
            conds = ((crd or {}).get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                return False
        return True

    wait_for(established, timeout=timeout, what=f"CRDs {names} to be Established")
    _discovery.clear()
    return names


def wait_for(
    predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; TimeoutError names ``what``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (ApiException, LookupError) as exc:
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def patch(
    api: ApiClient,
    obj: dict[str, Any],
    body: dict[str, Any],
    subresource: str | None = None,
    content_type: str = "application/merge-patch+json",
) -> dict[str, Any]:
    """A merge patch (by default) of an object or one of its subresources (e.g. ``status``)."""
    path = object_path(api, obj) + (f"/{subresource}" if subresource else "")
    result: dict[str, Any] = request(api, "PATCH", path, body=body, content_type=content_type)
    return result
