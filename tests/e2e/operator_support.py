"""Running the Flotilla operator against the rig for e2e tests."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
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
WAIT = 150.0  # generous: the machine may be busy; tests never assert wall-clock times
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


@contextmanager
def fleet_operator(hub: ClusterHandle, members: dict[str, ClusterHandle], **env: str) -> Iterator[KopfRunner]:
    """The CRDs installed, every member registered, the operator running and every member Ready."""
    install_flotilla_crds(hub)
    for member in members.values():
        register_member(hub, member)
    with running_operator(hub, **env) as runner:
        for name in members:
            kube.wait_for(partial(member_ready, hub, name), timeout=WAIT, what=f"member {name} Ready")
        yield runner


def delete_and_wait_gone(
    hub: ClusterHandle, members: dict[str, ClusterHandle], *objs: dict[str, Any], timeout: float = 120.0
) -> None:
    """Delete a test's templates on the hub and wait (best effort) for the operator to remove
    their copies from every member: copies left behind hold GPUs that later tests count."""
    api = hub.api_client()
    for obj in objs:
        with contextlib.suppress(Exception):
            kube.delete(api, obj)

    clients = [member.api_client() for member in members.values()]  # one each, not one per poll

    def copy_exists(client: Any, obj: dict[str, Any]) -> bool:
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        with contextlib.suppress(Exception):
            return kube.get(client, api_version, kind, meta["name"], meta["namespace"]) is not None
        return False

    with contextlib.suppress(TimeoutError):
        kube.wait_for(
            lambda: not any(copy_exists(c, o) for c in clients for o in objs),
            timeout=timeout,
            what="the test's copies removed from the members",
        )


def new_namespace(hub: ClusterHandle, prefix: str) -> str:
    """A fresh namespace on the hub, ``<prefix>-<random>``."""
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    kube.ensure_namespace(hub.api_client(), name)
    return name


def gpu_deployment(ns: str, name: str, replicas: int = 1, gpus: int = 1) -> dict[str, Any]:
    """A Deployment whose pods each ask for ``gpus`` GPUs (requests = limits, as extended resources need)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "vllm/vllm-openai:v0.6.3",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": str(gpus)},
                                "limits": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ]
                },
            },
        },
    }


def binding(hub: ClusterHandle, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(hub.api_client(), GROUP_VERSION, "ResourceBinding", name, namespace)


def condition_of(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return find_condition(((obj or {}).get("status") or {}).get("conditions"), type_)


def _brief(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    return {
        "resourceVersion": meta.get("resourceVersion"),
        "generation": meta.get("generation"),
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if "flotilla" in k},
        "spec": obj.get("spec"),
        "status": obj.get("status"),
    }


def workload_story(
    hub: ClusterHandle,
    members: dict[str, ClusterHandle],
    ns: str,
    name: str,
    api_version: str = "apps/v1",
    kind: str = "Deployment",
) -> str:
    """Where a workload stands, for a failure message: the template and its binding on the hub,
    the copies on the members, the Events on the template, and what the operator running in
    this process has cached and queued for it."""
    api = hub.api_client()
    template = kube.get(api, api_version, kind, name, ns)
    rb = kube.get(api, GROUP_VERSION, "ResourceBinding", f"{name}-{kind.lower()}", ns)
    copies = {c: _brief(kube.get(m.api_client(), api_version, kind, name, ns)) for c, m in members.items()}
    events = [
        f"{e.get('reason')}: {e.get('message')}"
        for e in kube.list_objects(api, "v1", "Event", ns)
        if (e.get("involvedObject") or {}).get("name") in (name, f"{name}-{kind.lower()}")
    ]
    lines = [
        f"template: {_brief(template)}",
        f"binding: {_brief(rb)}",
        f"copies: {copies}",
        f"events: {events}",
    ]
    from flotilla import operator  # the operator KopfRunner runs in this process

    rt = operator.STATE.runtime
    if rt is not None:
        tkey = (api_version, kind, ns, name)
        bkey = (ns, f"{name}-{kind.lower()}")
        cached_t = rt.state.templates.get(tkey)
        cached_b = rt.state.bindings.get(bkey)
        lines.append(
            "operator: template cached at "
            f"{(cached_t or {}).get('metadata', {}).get('resourceVersion')}, binding cached at "
            f"{(cached_b or {}).get('metadata', {}).get('resourceVersion')}"
        )
        for (wv, wk), watch in sorted(operator.STATE.hub_watches.items()):
            inner = watch._watch
            alive, synced = inner._thread.is_alive(), inner.synced.is_set()
            lines.append(f"hub watch {wv} {wk}: alive={alive} synced={synced}")
        for queue in rt.queues:
            key = tkey if queue is rt.detector_queue else bkey
            lines.append(
                f"queue {queue.name}: started={bool(queue._tasks)} len={len(queue)} "
                f"key dirty={key in queue._dirty} processing={key in queue._processing} "
                f"delayed={key in queue._delayed} failures={queue.failures(key)}"
            )
    return "\n".join(lines)
