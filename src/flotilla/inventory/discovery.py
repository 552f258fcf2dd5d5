"""Pure parsing of Kubernetes API discovery documents into API enablements.

A member's API enablements are the resources it serves, as ``(groupVersion, resource, kind)``
entries. They are published on the MemberCluster in Karmada's shape
(``[{groupVersion, resources: [{name, kind}]}]``) and handed to the scheduler as a set of
``group/version/Kind`` strings (core group: ``v1/Pod``).

Both discovery forms are understood: the aggregated document (``apidiscovery.k8s.io/v2``
``APIGroupDiscoveryList``, two requests for the whole server) and the legacy walk
(``/api``, ``/apis`` and one ``APIResourceList`` per group version). Subresources
(``pods/status``) are not enablements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = [
    "AGGREGATED_ACCEPT",
    "ApiResourceEntry",
    "enablement_status",
    "gvk_set",
    "is_aggregated",
    "parse_aggregated",
    "parse_resource_list",
]

AGGREGATED_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
"""Accept header asking for aggregated discovery, falling back to the legacy documents."""


class ApiResourceEntry(NamedTuple):
    """One served resource: ``("kubeflow.org/v1", "pytorchjobs", "PyTorchJob")``."""

    group_version: str
    name: str
    kind: str


def is_aggregated(doc: Mapping[str, Any]) -> bool:
    """Whether a ``/api`` or ``/apis`` answer is an aggregated discovery document."""
    return doc.get("kind") == "APIGroupDiscoveryList"


def parse_aggregated(doc: Mapping[str, Any]) -> list[ApiResourceEntry]:
    """Entries of an ``APIGroupDiscoveryList`` (the core group has an empty name)."""
    out: list[ApiResourceEntry] = []
    for group in doc.get("items") or ():
        name = (group.get("metadata") or {}).get("name") or ""
        for version in group.get("versions") or ():
            gv = f"{name}/{version['version']}" if name else str(version["version"])
            for res in version.get("resources") or ():
                kind = (res.get("responseKind") or {}).get("kind")
                if kind and res.get("resource"):
                    out.append(ApiResourceEntry(gv, str(res["resource"]), str(kind)))
    return out


def parse_resource_list(doc: Mapping[str, Any]) -> list[ApiResourceEntry]:
    """Entries of a legacy ``APIResourceList`` (``GET /api/v1``, ``GET /apis/<group>/<version>``)."""
    gv = str(doc.get("groupVersion") or "")
    return [
        ApiResourceEntry(gv, str(r["name"]), str(r["kind"]))
        for r in doc.get("resources") or ()
        if r.get("name") and "/" not in r["name"] and r.get("kind")
    ]


def gvk_set(entries: Iterable[ApiResourceEntry]) -> frozenset[str]:
    """``group/version/Kind`` strings, as ``ClusterInfo.api_enablements`` expects."""
    return frozenset(f"{e.group_version}/{e.kind}" for e in entries)


def enablement_status(entries: Iterable[ApiResourceEntry]) -> list[dict[str, Any]]:
    """Karmada's ``status.apiEnablements`` shape, sorted by groupVersion then resource name."""
    by_gv: dict[str, dict[str, str]] = {}
    for e in entries:
        by_gv.setdefault(e.group_version, {})[e.name] = e.kind
    return [
        {"groupVersion": gv, "resources": [{"name": n, "kind": k} for n, k in sorted(by_gv[gv].items())]}
        for gv in sorted(by_gv)
    ]
