"""Re-export of :mod:`flotilla.kube` for the rig and tests (``from flotilla.rig import kube``)."""

from flotilla.kube import (
    apply,
    delete,
    ensure_namespace,
    get,
    install_crds,
    list_objects,
    load_manifests,
    object_path,
    request,
    resolve,
    wait_for,
)

__all__ = [
    "apply",
    "delete",
    "ensure_namespace",
    "get",
    "install_crds",
    "list_objects",
    "load_manifests",
    "object_path",
    "request",
    "resolve",
    "wait_for",
]
