"""Application failover, PodGroup schedule timeouts and moves by request, with the in-memory fleet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_failover_controller import PYTORCHJOB, FailoverFleet, policy, pytorchjob, until
from test_runtime import NS, condition, deployment, start

from flotilla import metrics
from flotilla.api import GROUP_VERSION
from flotilla.controllers.eviction import MOVE_ANNOTATION
from flotilla.controllers.failover import FailoverSettings


@pytest.fixture
async def fleet() -> AsyncIterator[FailoverFleet]:
    f = FailoverFleet(FailoverSettings(rate=100, burst=100))
    yield f
    if f.rt is not None:
        await f.rt.stop()


def app_policy(name: str, seconds: int, purge: str = "Directly", **kw: Any) -> dict[str, Any]:
    body = policy(name, **kw)
    body["spec"]["failover"] = {
        "application": {"decisionConditions": {"tolerationSeconds": seconds}, "purgeMode": purge}
    }
    return body


def failovers(cluster: str, reason: str) -> float:
    return metrics.FAILOVERS.labels(cluster=cluster, reason=reason)._value.get()


async def test_a_workload_unhealthy_past_its_toleration_moves_and_its_cluster_is_avoided(
    fleet: FailoverFleet,
) -> None:
    fleet.hub.apply(app_policy("web", 1, clusters=["a", "b"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    fleet.hub.apply(policy("other", clusters=["a", "b"]), "test")  # no application rule
    fleet.hub.apply(deployment("other", 1), "test")
    before = failovers("a", "ApplicationFailure")
    await start(fleet)  # (Aggregated: a first)
    assert fleet.targets("other") == {"a": 1}
    # Nothing on a ever reports web healthy (its pods cannot be bound there): moved after 1 s.
    await until(lambda: fleet.targets("web") == {"b": 2}, timeout=15)
    (task,) = fleet.tasks("web")
    assert task["fromCluster"] == "a" and task["reason"] == "ApplicationFailure"
    assert task["purgeMode"] == "Directly" and "tolerationSeconds 1s" in task["message"]
    await until(lambda: fleet.copy("a", "web") is None)  # Directly: the old copy is removed
    assert fleet.copy("b", "web") is not None
    assert failovers("a", "ApplicationFailure") == before + 1
    scheduled = condition(fleet.binding("web"), "Scheduled")
    assert scheduled["reason"] == "Evicted" and "a (ApplicationFailure)" in scheduled["message"]
    await fleet.settle()
    # The replacement is not healthy yet: a stays out (the record stands, nothing bounces back).
    assert fleet.tasks("web") and fleet.targets("web") == {"b": 2}
    fleet.healthy("b", "web")
    await until(lambda: fleet.tasks("web") == [], timeout=10)  # healthy where it went: a is usable
    assert fleet.targets("web") == {"b": 2}
    assert fleet.targets("other") == {"a": 1}  # no rule: never moved for its health


async def test_a_workload_failing_everywhere_stays_on_its_last_cluster(fleet: FailoverFleet) -> None:
    fleet.hub.apply(app_policy("web", 1, clusters=["a", "b"]), "test")
    fleet.hub.apply(deployment("web", 1), "test")
    await start(fleet)
    await until(lambda: fleet.targets("web") == {"b": 1}, timeout=15)
    await asyncio.sleep(2.5)  # b's copy is not healthy either, but a is out while that lasts
    await fleet.settle()
    assert fleet.targets("web") == {"b": 1}
    assert [e[2] for e in fleet.events if e[0] == "web"].count("FailoverPending") == 1


async def test_a_healthy_copy_stops_the_clock(fleet: FailoverFleet) -> None:
    fleet.hub.apply(app_policy("web", 3, clusters=["a", "b"]), "test")
    fleet.hub.apply(deployment("web", 1), "test")
    rt = fleet.runtime()
    for obj in list(fleet.hub.objects.values()):
        if obj["kind"] == "Deployment":
            rt.on_template(None, obj)
    await rt.preload()
    await rt.start()
    await until(lambda: fleet.copy("a", "web"))
    await until(lambda: (NS, "web-deployment") in rt.failover._unhealthy)
    fleet.healthy("a", "web")  # within the toleration
    await until(lambda: not rt.failover._unhealthy)
    await asyncio.sleep(3.5)
    await fleet.settle()
    assert fleet.targets("web") == {"a": 1} and fleet.tasks("web") == []


async def test_gracefully_keeps_the_unhealthy_copy_until_the_replacement_is_healthy(
    fleet: FailoverFleet,
) -> None:
    fleet.hub.apply(app_policy("web", 1, purge="Gracefully", clusters=["a", "b"]), "test")
    fleet.hub.apply(deployment("web", 1), "test")
    await start(fleet)
    await until(lambda: fleet.targets("web") == {"b": 1}, timeout=15)
    (task,) = fleet.tasks("web")
    assert task["purgeMode"] == "Gracefully" and task["suppressDeletion"] is True
    await fleet.settle()
    assert fleet.copy("a", "web") is not None  # kept while b's copy is not healthy
    fleet.healthy("b", "web")
    await until(lambda: fleet.copy("a", "web") is None)


def pod_group(name: str, timeout: int) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PodGroup",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"minMember": 4, "scheduleTimeoutSeconds": timeout},
    }


async def test_a_gang_not_started_within_its_schedule_timeout_moves_whole(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("train", kind="PyTorchJob", api_version="kubeflow.org/v1"), "test")
    fleet.hub.apply(pod_group("train", 1), "test")
    job = pytorchjob("train")
    job["metadata"]["annotations"] = {"scheduling.k8s.io/group-name": "train"}
    fleet.hub.apply(job, "test")
    await start(fleet)
    rb = fleet.hub.find(GROUP_VERSION, "ResourceBinding", "train-pytorchjob", NS) or {}
    assert rb["spec"]["schedulingGroup"]["podGroup"] == "train"
    await until(lambda: fleet.tasks("train", "pytorchjob"), timeout=15)
    task = fleet.tasks("train", "pytorchjob")[0]
    first = task["fromCluster"]
    assert task["reason"] == "ApplicationFailure" and task["purgeMode"] == "Directly"  # never twice
    assert "PodGroup train scheduleTimeoutSeconds 1s" in task["message"]
    await until(lambda: fleet.copy(first, "train", PYTORCHJOB) is None)
    (now_on,) = fleet.targets("train", "pytorchjob")  # whole, on one cluster it has not failed on
    assert now_on not in {t["fromCluster"] for t in fleet.tasks("train", "pytorchjob")}
    assert fleet.copy(now_on, "train", PYTORCHJOB) is not None


async def test_move_by_request(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("web", clusters=["a", "b"], division="Weighted"), "test")
    fleet.hub.apply(deployment("web", 4), "test")
    await start(fleet)
    assert fleet.targets("web") == {"a": 2, "b": 2}

    def ask(to: str) -> None:
        rb = fleet.binding("web")
        assert rb is not None
        fleet.hub.patch(rb, {"metadata": {"annotations": {MOVE_ANNOTATION: to}}})

    ask("b")
    await until(lambda: fleet.targets("web") == {"b": 4})
    rb = fleet.binding("web")
    assert rb is not None and MOVE_ANNOTATION not in (rb["metadata"].get("annotations") or {})
    (task,) = fleet.tasks("web")
    assert task["fromCluster"] == "a" and task["reason"] == "Moved" and "moved to b" in task["message"]
    assert task["purgeMode"] == "Gracefully"  # the policy's cluster failover mode (the default)
    fleet.healthy("b", "web")
    await until(lambda: fleet.copy("a", "web") is None)
    await until(lambda: fleet.tasks("web") == [])

    ask("c")  # not allowed by the policy: refused, the request removed, nothing moves
    await until(
        lambda: MOVE_ANNOTATION not in ((fleet.binding("web") or {})["metadata"].get("annotations") or {})
    )
    failed = [e for e in fleet.events if e[2] == "MoveFailed"]
    assert len(failed) == 1 and "cannot move to c" in failed[0][3]
    ask("nowhere")
    await until(lambda: len([e for e in fleet.events if e[2] == "MoveFailed"]) == 2)
    assert "there is no member cluster 'nowhere'" in fleet.events[-1][3]
    assert fleet.targets("web") == {"b": 4}
