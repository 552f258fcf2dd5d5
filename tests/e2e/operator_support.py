"""Running the Flotilla operator against the rig for e2e tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kopf.testing import KopfRunner

from flotilla import kube
from flotilla.rig.binaries import repo_root
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.demo import GROUP_VERSION, SYSTEM_NS, flotilla_crds, register_member

REPO = repo_root()
__all__ = ["GROUP_VERSION", "REPO", "SYSTEM_NS", "register_member"]


def install_flotilla_crds(hub: ClusterHandle) -> None:
    kube.install_crds(hub.api_client(), flotilla_crds())


@contextmanager
def running_operator(hub: ClusterHandle) -> Iterator[KopfRunner]:
    """The operator in a thread (KopfRunner) against the rig's hub."""
    saved = {k: os.environ.get(k) for k in ("KUBECONFIG", "FLOTILLA_METRICS_PORT")}
    os.environ["KUBECONFIG"] = str(hub.kubeconfig)
    os.environ["FLOTILLA_METRICS_PORT"] = "0"
    try:
        with KopfRunner(
            ["run", "--standalone", "--all-namespaces", "-m", "flotilla.operator"], timeout=60
        ) as runner:
            yield runner
        assert runner.exception is None, runner.output
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def member_ready(hub: ClusterHandle, name: str) -> dict[str, Any] | None:
    mc = kube.get(hub.api_client(), GROUP_VERSION, "MemberCluster", name)
    conds = ((mc or {}).get("status") or {}).get("conditions") or []
    ok = any(c["type"] == "Ready" and c["status"] == "True" for c in conds)
    return mc if ok else None


def binding(hub: ClusterHandle, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(hub.api_client(), GROUP_VERSION, "ResourceBinding", name, namespace)


def condition_of(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return None
