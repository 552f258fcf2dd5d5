"""The live inventory against real member API servers: summaries, API enablements, watches, health."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flotilla.inventory import InventoryManager, MemberState
from flotilla.rig import kube
from flotilla.rig.cluster import ClusterHandle, inline_kubeconfig
from flotilla.scheduler import GPU_RESOURCE, SchedulerCache

TIMEOUT = 60.0


@pytest.fixture()
def manager() -> Iterator[InventoryManager]:
    mgr = InventoryManager(SchedulerCache(), probe_interval=1.0, failure_threshold=2, max_backoff=2.0)
    try:
        yield mgr
    finally:
        mgr.stop_all()


def _state_where(mgr: InventoryManager, name: str, check: Any, what: str) -> MemberState:
    def probe() -> MemberState | None:
        state = mgr.state(name)
        return state if check(state) else None

    try:
        return kube.wait_for(probe, timeout=TIMEOUT, interval=0.2, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last state: {mgr.state(name)}") from None


def _free_gpus(state: MemberState) -> int | None:
    summary = state.resource_summary
    return int(summary["free"][GPU_RESOURCE]) if summary and GPU_RESOURCE in summary["free"] else None


def _gvks(state: MemberState) -> set[str]:
    return {f"{e['groupVersion']}/{r['kind']}" for e in state.api_enablements for r in e["resources"]}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_member_a_inventory_summary_and_apis(
    manager: InventoryManager, members: dict[str, ClusterHandle]
) -> None:
    manager.register("a", inline_kubeconfig(members["a"]), {"region": "eu-west"})
    manager.register("c", inline_kubeconfig(members["c"]))
    a = _state_where(
        manager, "a", lambda s: s.ready and _free_gpus(s) == 40, "member a Ready with 40 free GPUs"
    )
    assert a.reason == "Ready"
    assert a.node_summary == {"totalNum": 5, "readyNum": 5, "cordonedNum": 0}
    assert a.resource_summary is not None
    assert a.resource_summary["allocatable"][GPU_RESOURCE] == "40"
    assert a.resource_summary["gpuModels"] == [
        {"model": "NVIDIA-H100-80GB-HBM3", "memoryMiB": 81559, "total": 40, "free": 40, "nodes": 5}
    ]
    assert a.kubernetes_version and a.kubernetes_version.startswith("v1.")
    assert a.last_probe_time is not None
    assert {"kubeflow.org/v1/PyTorchJob", "apps/v1/Deployment", "v1/Pod", "batch/v1/Job"} <= _gvks(a)

    c = _state_where(manager, "c", lambda s: s.ready and _free_gpus(s) == 16, "member c Ready with 16 GPUs")
    assert "kubeflow.org/v1/PyTorchJob" not in _gvks(c)
    assert "apps/v1/Deployment" in _gvks(c)

    # The scheduler cache sees the same inventory.
    with manager.lock:
        snap = manager.cache.snapshot()
    cluster = snap.clusters["a"]
    assert cluster.ready and cluster.labels == {"region": "eu-west"}
    assert cluster.api_enablements is not None and "kubeflow.org/v1/PyTorchJob" in cluster.api_enablements
    assert sum(n.whole_free for n in cluster.nodes.values()) == 40
    assert snap.clusters["c"].api_enablements is not None
    assert "kubeflow.org/v1/PyTorchJob" not in snap.clusters["c"].api_enablements


def _gpu_deployment(name: str, gpus: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "tolerations": [
                        {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [
                        {
                            "name": "train",
                            "image": "registry.example/train:latest",
                            "resources": {
                                "requests": {"cpu": "1", GPU_RESOURCE: str(gpus)},
                                "limits": {GPU_RESOURCE: str(gpus)},
                            },
                        }
                    ],
                },
            },
        },
    }


def test_watch_tracks_gpu_usage(manager: InventoryManager, members: dict[str, ClusterHandle]) -> None:
    """An 8-GPU pod lands on member a: free GPUs drop to 32 via the watch, and return when it goes.

    A Deployment keeps its pod Running (KWOK completes Job pods at once); a completed Job pod
    (Succeeded, still present) must not hold GPUs either.
    """
    manager.register("a", inline_kubeconfig(members["a"]))
    _state_where(manager, "a", lambda s: s.ready and _free_gpus(s) == 40, "member a with 40 free GPUs")
    api = members["a"].api_client()
    dep = _gpu_deployment(f"inv-{uuid.uuid4().hex[:6]}", 8)
    job_name = f"inv-job-{uuid.uuid4().hex[:6]}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name, "namespace": "default"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {**dep["spec"]["template"]["spec"], "restartPolicy": "Never"}},
        },
    }
    version = manager.version
    try:
        kube.apply(api, dep)
        used = _state_where(manager, "a", lambda s: _free_gpus(s) == 32, "free GPUs on a to drop to 32")
        assert used.resource_summary is not None
        assert used.resource_summary["allocated"][GPU_RESOURCE] == "8"
        assert used.resource_summary["gpuModels"][0]["free"] == 32
        assert manager.version > version
        with manager.lock:
            nodes = manager.cache.snapshot().clusters["a"].nodes.values()
            assert sorted(n.whole_free for n in nodes) == [0, 8, 8, 8, 8]

        kube.apply(api, job)
        kube.wait_for(
            lambda: (
                (kube.get(api, "batch/v1", "Job", job_name, "default") or {})
                .get("status", {})
                .get("succeeded")
            ),
            timeout=TIMEOUT,
            what=f"Job {job_name} to succeed",
        )
        pods = kube.list_objects(api, "v1", "Pod", "default", label_selector=f"job-name={job_name}")
        assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
        assert _free_gpus(manager.state("a")) == 32

        capacity = manager.capacity_version
        kube.delete(api, dep)
        _state_where(manager, "a", lambda s: _free_gpus(s) == 40, "free GPUs on a to return to 40")
        assert manager.capacity_version > capacity
    finally:
        kube.delete(api, dep)
        kube.delete(api, job)


def test_broken_members_are_not_ready_and_others_keep_working(
    manager: InventoryManager, members: dict[str, ClusterHandle]
) -> None:
    manager.register("a", inline_kubeconfig(members["a"]))
    garbage = manager.register("garbage", "this: [is not a kubeconfig")
    assert not garbage.ready and garbage.reason == "KubeconfigInvalid"
    assert "YAML" in garbage.message

    good = inline_kubeconfig(members["b"])
    closed = good.replace(members["b"].server, f"https://127.0.0.1:{_closed_port()}")
    assert closed != good
    manager.register("closed", closed)
    down = _state_where(manager, "closed", lambda s: s.reason == "Unreachable", "member 'closed' Unreachable")
    assert not down.ready and "connect" in down.message

    _state_where(manager, "a", lambda s: s.ready and _free_gpus(s) == 40, "member a still served")
    with manager.lock:
        snap = manager.cache.snapshot()
    assert snap.clusters["a"].ready
    assert not snap.clusters["garbage"].ready and not snap.clusters["closed"].ready
    assert manager.names() == ["a", "closed", "garbage"]

    # Fixing the kubeconfig restarts the connection and the member turns Ready.
    b_nodes = kube.list_objects(members["b"].api_client(), "v1", "Node")
    b_gpus = sum(int(n["status"]["allocatable"][GPU_RESOURCE]) for n in b_nodes)
    manager.register("closed", good)
    _state_where(
        manager,
        "closed",
        lambda s: s.ready and int((s.resource_summary or {})["allocatable"][GPU_RESOURCE]) == b_gpus,
        "member 'closed' repaired",
    )
    assert manager.unregister("garbage")
    with manager.lock:
        assert "garbage" not in manager.cache.snapshot().clusters
