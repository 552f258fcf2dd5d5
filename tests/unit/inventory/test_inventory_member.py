"""MemberConnection and InventoryManager against an in-process fake API server (no rig needed)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from fake_apiserver import FakeApiServer
from inventory_objects import node, pod

from flotilla.certs import make_ca_pem
from flotilla.inventory import (
    InventoryError,
    InventoryManager,
    MemberConnection,
    MemberState,
    load_kubeconfig,
)
from flotilla.scheduler import SchedulerCache

T = TypeVar("T")


def eventually(predicate: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll until ``predicate`` returns something truthy (generous timeout; never a timing assert)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gpu_pod(uid: str, node_name: str, gpus: int, **kw: Any) -> dict[str, Any]:
    return pod(
        uid,
        node_name,
        containers=[{"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}],
        **kw,
    )


def free_gpus(state: MemberState) -> int | None:
    summary = state.resource_summary
    return int(summary["free"]["nvidia.com/gpu"]) if summary else None


@pytest.fixture()
def server() -> Iterator[FakeApiServer]:
    fake = FakeApiServer().start()
    fake.put("nodes", node("n1"))
    fake.put("nodes", node("n2"))
    fake.put("pods", gpu_pod("p1", "n1", 2))
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture()
def manager() -> Iterator[InventoryManager]:
    changes: list[str] = []
    mgr = InventoryManager(
        SchedulerCache(), probe_interval=0.05, failure_threshold=2, max_backoff=0.2, on_change=changes.append
    )
    try:
        yield mgr
    finally:
        mgr.stop_all()


def ready_with(mgr: InventoryManager, name: str, gpus: int) -> MemberState:
    return eventually(
        lambda: (s := mgr.state(name)).ready and free_gpus(s) == gpus and s,
        f"{name} Ready with {gpus} free GPUs",
    )


def test_lists_then_follows_the_watch(server: FakeApiServer, manager: InventoryManager) -> None:
    state = manager.register("m", server.kubeconfig(), {"gpu": "hopper"})
    assert not state.ready and state.reason == "Connecting"
    state = ready_with(manager, "m", 14)
    assert state.reason == "Ready"
    assert state.kubernetes_version == "v1.34.0-fake"
    assert state.node_summary == {"totalNum": 2, "readyNum": 2, "cordonedNum": 0}
    assert {
        "groupVersion": "kubeflow.org/v1",
        "resources": [{"name": "pytorchjobs", "kind": "PyTorchJob"}],
    } in (state.api_enablements)
    with manager.lock:
        cluster = manager.cache.snapshot().clusters["m"]
    assert cluster.ready and cluster.labels == {"gpu": "hopper"}
    assert cluster.api_enablements == {"v1/Pod", "v1/Node", "kubeflow.org/v1/PyTorchJob"}

    version, capacity = manager.version, manager.capacity_version
    server.put("pods", gpu_pod("p2", "n2", 8))
    ready_with(manager, "m", 6)
    assert manager.version > version
    assert manager.capacity_version == capacity  # capacity only shrank

    server.put("pods", gpu_pod("p2", "n2", 8, phase="Succeeded"))
    ready_with(manager, "m", 14)
    assert manager.wait_for_change(capacity, timeout=5, capacity=True) > capacity

    server.put("nodes", node("n3", unschedulable=True))
    eventually(
        lambda: manager.state("m").node_summary == {"totalNum": 3, "readyNum": 3, "cordonedNum": 1},
        "third node, cordoned",
    )
    assert free_gpus(manager.state("m")) == 14  # cordoned: not schedulable capacity
    server.delete("nodes", node("n1"))
    ready_with(manager, "m", 8)
    assert server.lists == {"nodes": 1, "pods": 1}  # no re-list without a reason


def test_relists_after_410_gone(server: FakeApiServer, manager: InventoryManager) -> None:
    manager.register("m", server.kubeconfig())
    ready_with(manager, "m", 14)
    server.delete("pods", gpu_pod("p1", "n1", 2), silent=True)  # an event the watch never delivers
    server.put("pods", gpu_pod("p3", "n2", 4), silent=True)
    server.expire_watches("pods")
    ready_with(manager, "m", 12)
    assert server.lists["pods"] == 2 and server.lists["nodes"] == 1


def test_probe_failures_turn_the_member_not_ready_and_back(
    server: FakeApiServer, manager: InventoryManager
) -> None:
    manager.register("m", server.kubeconfig())
    ready_with(manager, "m", 14)
    capacity = manager.capacity_version
    server.readyz_status = 500
    state = eventually(
        lambda: (s := manager.state("m")).reason == "APIServerNotReady" and s, "APIServerNotReady"
    )
    assert not state.ready and "500" in state.message
    assert state.health == "NotReady" and manager.health("m").state == "NotReady"
    with manager.lock:
        assert not manager.cache.snapshot().clusters["m"].ready
    server.readyz_status = 200
    ready_with(manager, "m", 14)
    assert manager.capacity_version > capacity
    assert manager.health("m").state == "Ready"
    with manager.lock:
        assert manager.cache.snapshot().clusters["m"].ready


def test_a_member_without_a_ready_node_turns_not_ready(
    server: FakeApiServer, manager: InventoryManager
) -> None:
    manager.register("m", server.kubeconfig())
    ready_with(manager, "m", 14)
    server.put("nodes", node("n1", ready="False"))
    eventually(
        lambda: manager.state("m").node_summary == {"totalNum": 2, "readyNum": 1, "cordonedNum": 0}, "n1"
    )
    assert manager.state("m").ready  # one Ready node is enough
    server.put("nodes", node("n2", ready="Unknown"))
    state = eventually(lambda: (s := manager.state("m")).reason == "NoReadyNodes" and s, "NoReadyNodes")
    assert not state.ready and state.message == "none of the member's 2 nodes is Ready"
    server.put("nodes", node("n2"))
    eventually(lambda: manager.state("m").ready, "Ready again")


def test_set_taints_reaches_the_scheduler_cache(server: FakeApiServer, manager: InventoryManager) -> None:
    manager.register("m", server.kubeconfig(), taints=[{"key": "user", "effect": "NoSchedule"}])
    ready_with(manager, "m", 14)
    version = manager.version
    taints = [
        {"key": "user", "effect": "NoSchedule"},
        {
            "key": "cluster.flotilla.dev/unreachable",
            "effect": "NoExecute",
            "timeAdded": "2026-01-02T03:04:05Z",
        },
    ]
    assert manager.set_taints("m", taints)
    assert not manager.set_taints("m", taints)  # unchanged
    assert not manager.set_taints("unknown", taints)
    assert manager.version > version
    with manager.lock:
        cluster = manager.cache.snapshot().clusters["m"]
    assert [str(t) for t in cluster.taints] == [
        "user:NoSchedule",
        "cluster.flotilla.dev/unreachable:NoExecute",
    ]
    assert cluster.taints[1].time_added is not None and cluster.taints[1].time_added.year == 2026


def test_wrong_token_is_unauthorized(server: FakeApiServer, manager: InventoryManager) -> None:
    manager.register("m", server.kubeconfig(token="wrong"))
    state = eventually(lambda: (s := manager.state("m")).reason == "Unauthorized" and s, "Unauthorized")
    assert not state.ready


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("this: [is not yaml", "not valid YAML"),
        ("just a string", "no clusters"),
        ("clusters: [{name: x, cluster: {server: https://h}}]\ncontexts: []\n", "cannot be used"),
    ],
)
def test_invalid_kubeconfigs(text: str, fragment: str, manager: InventoryManager) -> None:
    state = manager.register("bad", text)
    assert (state.ready, state.reason) == (False, "KubeconfigInvalid")
    assert fragment in state.message
    with manager.lock:
        assert not manager.cache.snapshot().clusters["bad"].ready
    with pytest.raises(InventoryError, match=fragment):
        MemberConnection("direct", text, SchedulerCache()).start()


def test_bad_certificate_data_is_invalid(server: FakeApiServer, manager: InventoryManager) -> None:
    https = server.url.replace("http://", "https://")
    text = server.kubeconfig().replace(
        f"server: {server.url}", f"server: {https}\n    certificate-authority-data: '%%%'"
    )
    state = manager.register("bad", text)
    assert state.reason == "KubeconfigInvalid" and "certificates" in state.message


def test_members_sharing_a_ca_load_concurrently() -> None:
    """Members whose kubeconfigs carry the same CA, loaded from many threads at once, all load.

    The kubernetes client's own temporary files are named in a shared cache before they are
    written, so a concurrent reader could find the CA empty (seen on the rig: member c
    ``KubeconfigInvalid: NO_CERTIFICATE_OR_CRL_FOUND``); ``load_kubeconfig`` writes its own.
    """
    ca_pem, key_pem = make_ca_pem("shared-ca")
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def load(i: int) -> None:
        text = yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "m",
                        "cluster": {
                            "server": f"https://127.0.0.1:{6443 + i}",
                            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "client-certificate-data": base64.b64encode(ca_pem).decode(),
                            "client-key-data": base64.b64encode(key_pem).decode(),
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "m", "user": "u"}}],
                "current-context": "c",
            }
        )
        barrier.wait()
        try:
            cfg = load_kubeconfig(text)
            assert Path(cfg.ssl_ca_cert).read_bytes() == ca_pem
            assert Path(cfg.key_file).read_bytes() == key_pem
        except BaseException as exc:  # reported below
            errors.append(exc)

    for _round in range(5):
        threads = [threading.Thread(target=load, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]


def test_certificate_data_that_is_not_base64_is_invalid() -> None:
    text = (
        "clusters: [{name: x, cluster: {server: 'https://h', certificate-authority-data: 'abc'}}]\n"
        "contexts: [{name: c, context: {cluster: x}}]\ncurrent-context: c\n"
    )
    with pytest.raises(InventoryError, match="certificate-authority-data is not base64") as info:
        load_kubeconfig(text)
    assert info.value.reason == "KubeconfigInvalid"


def test_unreachable_member_and_repair(server: FakeApiServer, manager: InventoryManager) -> None:
    broken = server.kubeconfig().replace(server.url, f"http://127.0.0.1:{_closed_port()}")
    manager.register("m", broken)
    state = eventually(lambda: (s := manager.state("m")).reason == "Unreachable" and s, "Unreachable")
    assert "cannot connect" in state.message
    manager.register("m", server.kubeconfig())  # changed kubeconfig: restart
    ready_with(manager, "m", 14)
    assert manager.names() == ["m"]


def test_register_is_idempotent_and_updates_metadata_in_place(
    server: FakeApiServer, manager: InventoryManager
) -> None:
    manager.register("m", server.kubeconfig(), {"a": "1"})
    ready_with(manager, "m", 14)
    version = manager.version
    manager.register("m", server.kubeconfig(), {"a": "1"})
    assert manager.version == version
    manager.register(
        "m", server.kubeconfig(), {"a": "2"}, [{"key": "k", "effect": "NoSchedule"}], region="eu"
    )
    with manager.lock:
        cluster = manager.cache.snapshot().clusters["m"]
    assert cluster.labels == {"a": "2"} and cluster.region == "eu" and cluster.taints[0].key == "k"
    assert manager.state("m").ready
    assert server.lists == {"nodes": 1, "pods": 1}  # never reconnected


def test_stop_ends_every_thread_and_removes_the_member(
    server: FakeApiServer, manager: InventoryManager
) -> None:
    manager.register("m", server.kubeconfig())
    ready_with(manager, "m", 14)
    eventually(lambda: server.watches["pods"] and server.watches["nodes"], "open watches")
    assert manager.unregister("m")
    assert not manager.unregister("m")
    alive = [t.name for t in threading.enumerate() if t.name.startswith("flotilla-inventory-m-")]
    assert alive == []
    with manager.lock:
        assert "m" not in manager.cache.snapshot().clusters
    with pytest.raises(KeyError):
        manager.state("m")
