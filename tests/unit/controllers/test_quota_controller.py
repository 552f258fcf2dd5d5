"""The quota controller inside the runtime, against in-memory API servers: status from the
workloads, charges released once shown, static assignments bounding placement per cluster."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from test_runtime import NS, Fleet, condition, deployment, policy, start

from flotilla.api import GROUP_VERSION
from flotilla.controllers.quota import MEMBER_QUOTA_LABEL
from flotilla.quota import Charge

GPU = "nvidia.com/gpu"


def quota(gpus: int, static: dict[str, int] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"overall": {GPU: gpus}}
    if static:
        spec["staticAssignments"] = [{"clusterName": c, "hard": {GPU: n}} for c, n in static.items()]
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "FederatedResourceQuota",
        "metadata": {"name": "gpus", "namespace": NS},
        "spec": spec,
    }


def quota_status(fleet: Fleet) -> dict[str, Any]:
    obj = fleet.hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS)
    assert obj is not None
    return dict(obj.get("status") or {})


async def test_status_counts_workloads_per_cluster_and_goes_over_when_lowered(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 4, gpus=2), "test")
    fleet.hub.apply(quota(64), "test")
    await start(fleet)
    st = quota_status(fleet)
    assert st["overallUsed"] == {GPU: "8"}
    assert sum(int(e["used"][GPU]) for e in st["aggregatedStatus"]) == 8
    assert condition({"status": st}, "Exceeded")["status"] == "False"
    assert condition({"status": st}, "Ready")["status"] == "True"

    fleet.hub.apply(quota(4), "test")  # lowered below usage: nothing is evicted, the status says so
    await fleet.settle()
    exceeded = condition({"status": quota_status(fleet)}, "Exceeded")
    assert exceeded["status"] == "True" and "used 8 of 4" in exceeded["message"]
    assert fleet.replicas("web") and sum(fleet.replicas("web").values()) == 4

    fleet.hub.delete(deployment("web", 4))  # deleting frees its share
    await fleet.settle()
    assert quota_status(fleet)["overallUsed"] == {GPU: "0"}


async def test_a_charge_is_released_once_its_workload_shows(fleet: Fleet) -> None:
    fleet.hub.apply(quota(64), "test")
    await start(fleet)
    body = fleet.hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS)
    assert body is not None
    far = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    charges = [
        Charge("apps/v1/Deployment/web", {GPU: 8}, {GPU: 8}, far).to_dict(),
        Charge("apps/v1/Deployment/never", {GPU: 8}, {GPU: 8}, far).to_dict(),
    ]
    fleet.hub.patch(body, {"status": {"charges": charges, "overallUsed": {GPU: "16"}}}, "status")
    await fleet.settle()
    assert quota_status(fleet)["overallUsed"] == {GPU: "16"}  # both still count
    fleet.hub.apply(deployment("web", 8), "test")
    await fleet.settle()
    st = quota_status(fleet)
    assert [c["workload"] for c in st["charges"]] == ["apps/v1/Deployment/never"]
    assert st["overallUsed"] == {GPU: "16"}  # web counts itself now, "never" by its charge


async def test_expired_charge_is_released(fleet: Fleet) -> None:
    fleet.hub.apply(quota(64), "test")
    await start(fleet)
    body = fleet.hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS)
    assert body is not None
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    charge = Charge("apps/v1/Deployment/never", {GPU: 8}, {GPU: 8}, soon).to_dict()
    fleet.hub.patch(body, {"status": {"charges": [charge], "overallUsed": {GPU: "8"}}}, "status")
    await fleet.settle()
    assert fleet.rt is not None
    for _ in range(60):
        if quota_status(fleet)["overallUsed"] == {GPU: "0"}:
            break
        await fleet.settle()
        await asyncio.sleep(0.1)
    assert quota_status(fleet)["overallUsed"] == {GPU: "0"} and "charges" not in quota_status(fleet)


async def test_static_assignment_caps_each_cluster_and_makes_member_quotas(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(quota(64, static={"a": 10}), "test")
    fleet.hub.apply(deployment("big", 20), "test")
    await start(fleet)
    first = fleet.replicas("big")
    assert first.get("a", 0) <= 10 and sum(first.values()) == 20
    fleet.hub.apply(deployment("more", 5), "test")
    await fleet.settle()
    on_a = first.get("a", 0) + fleet.replicas("more").get("a", 0)
    assert on_a <= 10 and sum(fleet.replicas("more").values()) == 5
    rq = fleet.members["a"].find("v1", "ResourceQuota", "flotilla-gpus", NS)
    assert rq is not None and rq["spec"]["hard"] == {"requests.nvidia.com/gpu": "10"}
    assert rq["metadata"]["labels"][MEMBER_QUOTA_LABEL] == "gpus"
    assert fleet.members["b"].find("v1", "ResourceQuota", "flotilla-gpus", NS) is None
    st = quota_status(fleet)
    a_entry = next(e for e in st["aggregatedStatus"] if e["clusterName"] == "a")
    assert a_entry["hard"] == {GPU: "10"} and int(a_entry["used"][GPU]) == on_a

    fleet.hub.patch(  # assignment removed: its member quota goes
        fleet.hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS) or {},
        {"spec": {"staticAssignments": None}},
    )
    await fleet.settle()
    assert fleet.members["a"].find("v1", "ResourceQuota", "flotilla-gpus", NS) is None


async def test_a_workload_past_its_share_waits_until_the_share_grows(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p", clusters=["a"]), "test")
    fleet.hub.apply(quota(64, static={"a": 4}), "test")
    fleet.hub.apply(deployment("web", 8), "test")
    await start(fleet)
    assert fleet.replicas("web") == {}  # 8 replicas, room for 4 within the share: all or nothing
    scheduled = condition(fleet.binding("web"), "Scheduled")
    assert scheduled["status"] == "False" and "quota share" in scheduled["message"]
    fleet.hub.patch(
        fleet.hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS) or {},
        {"spec": {"staticAssignments": [{"clusterName": "a", "hard": {GPU: 8}}]}},
    )
    await fleet.settle()
    await asyncio.sleep(0.7)  # the pending set is retried after a short debounce
    await fleet.settle()
    assert fleet.replicas("web") == {"a": 8}
