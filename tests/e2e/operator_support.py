"""Running the Flotilla operator against the rig for e2e tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kopf.testing import KopfRunner

from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.api.conditions import find_condition
from flotilla.rig.binaries import repo_root
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.demo import (
    SYSTEM_NS,
    flotilla_crds,
    member_ready,
    register_member,
    remove_webhook,
    webhook_env,
)

REPO = repo_root()
__all__ = ["GROUP_VERSION", "REPO", "SYSTEM_NS", "member_ready", "register_member"]


def install_flotilla_crds(hub: ClusterHandle) -> None:
    kube.install_crds(hub.api_client(), flotilla_crds())


@contextmanager
def running_operator(hub: ClusterHandle, **env: str) -> Iterator[KopfRunner]:
    """The operator in a thread (KopfRunner) against the rig's hub, serving the quota webhook the
    hub calls (unregistered when it stops: its failure policy would refuse applies meanwhile)."""
    settings = {
        "KUBECONFIG": str(hub.kubeconfig),
        "FLOTILLA_METRICS_PORT": "0",
        **webhook_env(hub),
        **env,
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        with KopfRunner(
            ["run", "--standalone", "--all-namespaces", "-m", "flotilla.operator"], timeout=60
        ) as runner:
            yield runner
        assert runner.exception is None, runner.output
    finally:
        remove_webhook(hub)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def binding(hub: ClusterHandle, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(hub.api_client(), GROUP_VERSION, "ResourceBinding", name, namespace)


def condition_of(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return find_condition(((obj or {}).get("status") or {}).get("conditions"), type_)
