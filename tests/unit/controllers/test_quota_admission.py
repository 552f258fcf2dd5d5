"""The quota admission check against an in-memory API server: exact under concurrency, dry run,
updates that raise or lower requests, and the scale subresource."""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

from fake_kube import FakeApiServer

from flotilla.admission.review import AdmissionRequest, GroupVersionKind, GroupVersionResource
from flotilla.api import GROUP_VERSION
from flotilla.interpreter import InterpreterRegistry
from flotilla.quota.admission import QuotaAdmission

NS = "team-a"
GPU = "nvidia.com/gpu"
_uid = itertools.count()


def deployment(name: str, replicas: int, gpus: int = 8) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "c", "image": "x", "resources": {"requests": {GPU: str(gpus)}}}]
                },
            },
        },
    }


def request(
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
    *,
    dry_run: bool = False,
    sub_resource: str = "",
) -> AdmissionRequest:
    return AdmissionRequest(
        uid=f"uid-{next(_uid)}",
        kind=GroupVersionKind("apps", "v1", obj["kind"]),
        resource=GroupVersionResource("apps", "v1", "deployments"),
        namespace=NS,
        name=obj["metadata"]["name"],
        operation="UPDATE" if old is not None else "CREATE",
        object=obj,
        old_object=old,
        dry_run=dry_run,
        user="alice",
        sub_resource=sub_resource,
    )


def make_quota(hub: FakeApiServer, gpus: int = 64) -> None:
    hub.apply(
        {
            "apiVersion": GROUP_VERSION,
            "kind": "FederatedResourceQuota",
            "metadata": {"name": "gpus", "namespace": NS},
            "spec": {"overall": {GPU: gpus}},
        },
        "test",
    )


def status(hub: FakeApiServer) -> dict[str, Any]:
    obj = hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS)
    assert obj is not None
    return dict(obj.get("status") or {})


async def test_fifty_concurrent_applies_to_two_replicas_admit_exactly_what_fits() -> None:
    hub = FakeApiServer()
    make_quota(hub)
    replicas = [QuotaAdmission(hub, InterpreterRegistry()) for _ in range(2)]
    answers = await asyncio.gather(
        *(replicas[i % 2].review(request(deployment(f"d{i}", 1))) for i in range(50))
    )
    allowed = [a for a in answers if a.allowed]
    denied = [a for a in answers if not a.allowed]
    assert len(allowed) == 8 and len(denied) == 42
    assert all(
        a.message == "FederatedResourceQuota team-a/gpus: requested nvidia.com/gpu=8, used 64 of 64, 0 left"
        for a in denied
    )
    st = status(hub)
    assert st["overallUsed"] == {GPU: "64"}
    assert len(st["charges"]) == 8
    # Within a replica applies take turns; only the two replicas race each other (and retry).
    assert hub.writes[("patch/status", "FederatedResourceQuota")] == 8


async def test_a_denial_is_only_given_on_the_quota_as_it_is_now() -> None:
    hub = FakeApiServer()
    make_quota(hub, gpus=8)
    admission = QuotaAdmission(hub, InterpreterRegistry())
    assert (await admission.review(request(deployment("a", 1)))).allowed  # 8 of 8
    body = hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS)
    assert body is not None  # the quota controller saw "a" go: usage back to 0
    hub.patch(body, {"status": {"overallUsed": {GPU: "0"}, "charges": None}}, "status")
    assert (await admission.review(request(deployment("b", 1)))).allowed


async def test_dry_run_is_checked_and_reserves_nothing() -> None:
    hub = FakeApiServer()
    make_quota(hub, gpus=8)
    admission = QuotaAdmission(hub, InterpreterRegistry())
    assert (await admission.review(request(deployment("d", 1), dry_run=True))).allowed
    assert not (await admission.review(request(deployment("d", 2), dry_run=True))).allowed
    assert status(hub) == {}


async def test_scale_up_past_quota_is_denied_scale_down_accepted() -> None:
    hub = FakeApiServer()
    make_quota(hub, gpus=16)
    admission = QuotaAdmission(hub, InterpreterRegistry())
    small = deployment("d", 1)
    assert (await admission.review(request(small))).allowed
    bigger = deployment("d", 2)
    assert (await admission.review(request(bigger, small))).allowed  # +8: 16 of 16
    answer = await admission.review(request(deployment("d", 3), bigger))
    assert not answer.allowed and "requested nvidia.com/gpu=8, used 16 of 16, 0 left" in answer.message
    assert (await admission.review(request(small, bigger))).allowed  # lowering asks for nothing
    assert len(status(hub)["charges"]) == 2


async def test_no_quota_or_not_a_workload_is_allowed_without_writes() -> None:
    hub = FakeApiServer()
    admission = QuotaAdmission(hub, InterpreterRegistry())
    assert (await admission.review(request(deployment("d", 100)))).allowed
    make_quota(hub, gpus=1)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": NS}}
    assert (await admission.review(request(cm))).allowed
    assert hub.total_writes("FederatedResourceQuota") == 1  # only the test's own apply


async def test_scale_subresource_is_charged_like_the_workload() -> None:
    hub = FakeApiServer()
    make_quota(hub, gpus=16)
    hub.apply(deployment("d", 1), "test")
    admission = QuotaAdmission(
        hub,
        InterpreterRegistry(),
        kind_of=lambda g, v, r: "Deployment" if (g, r) == ("apps", "deployments") else None,
        observed=lambda ns: {"apps/v1/Deployment/d": {GPU: 8}},  # the quota controller's view
    )

    def scale(replicas: int) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "d", "namespace": NS},
            "spec": {"replicas": replicas},
        }

    answer = await admission.review(request(scale(3), scale(1), sub_resource="scale"))
    assert not answer.allowed and "requested nvidia.com/gpu=16" in answer.message
    assert (await admission.review(request(scale(2), scale(1), sub_resource="scale"))).allowed
    assert status(hub)["overallUsed"] == {GPU: "16"}


async def test_a_denial_by_one_quota_releases_the_charge_of_another() -> None:
    hub = FakeApiServer()
    make_quota(hub, gpus=64)
    second = copy.deepcopy(hub.find(GROUP_VERSION, "FederatedResourceQuota", "gpus", NS))
    assert second is not None
    second["metadata"] = {"name": "tight", "namespace": NS}
    second["spec"] = {"overall": {GPU: 4}}
    hub.apply(second, "test")
    admission = QuotaAdmission(hub, InterpreterRegistry())
    answer = await admission.review(request(deployment("d", 1)))
    assert not answer.allowed and "team-a/tight" in answer.message
    assert status(hub).get("charges") == []
    assert status(hub)["overallUsed"] == {GPU: "0"}
