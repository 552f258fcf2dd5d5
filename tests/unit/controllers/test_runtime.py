"""The controllers end to end against in-memory API servers (the e2e suite covers the real ones)."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import pytest
from fake_kube import FakeApiServer
from kubernetes.client import ApiException

from flotilla.api import GROUP_VERSION
from flotilla.api.binding import AggregatedStatusItem
from flotilla.controllers import propagation
from flotilla.controllers.runtime import Runtime
from flotilla.inventory.convert import pod_info
from flotilla.scheduler import SchedulerCache
from flotilla.scheduler.snapshot import ClusterInfo, NodeInfo

NS = "team"
GPU = "nvidia.com/gpu"


def gpu_node(name: str, gpus: int = 8) -> NodeInfo:
    alloc = {"cpu": 64_000, "memory": 512 << 30, "pods": 110, GPU: gpus}
    return NodeInfo(name, alloc, {}, {"nvidia.com/gpu.product": "H100"}, (), None)


def deployment(
    name: str, replicas: int, gpus: int = 1, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": name}},
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


def policy(
    name: str, *, priority: int = 0, preemption: str | None = None, clusters: list[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
        "priority": priority,
        "placement": {
            "clusterAffinity": {"clusterNames": clusters or ["a", "b"]},
            "replicaScheduling": {
                "replicaSchedulingType": "Divided",
                "replicaDivisionPreference": "Aggregated",
            },
        },
    }
    if preemption:
        spec["preemption"] = preemption
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


class Fleet:
    """A hub, members a and b, and the operator's runtime wired to them as the watches would."""

    def __init__(self) -> None:
        self.hub = FakeApiServer("hub")
        self.members = {n: FakeApiServer(n) for n in ("a", "b")}
        self.ready = {"a": True, "b": True}
        self.cache = SchedulerCache()
        self.cache.update_cluster(ClusterInfo("a", {f"a-{i}": gpu_node(f"a-{i}") for i in range(2)}))
        self.cache.update_cluster(ClusterInfo("b", {f"b-{i}": gpu_node(f"b-{i}") for i in range(2)}))
        self.rt: Runtime | None = None
        self.events: list[tuple[str, str, str, str]] = []  # (kind, type, reason, message)

    def runtime(self, **options: Any) -> Runtime:
        loop = asyncio.get_running_loop()
        rt = Runtime(
            self.hub,
            self.cache,
            threading.RLock(),
            loop,
            member_client=lambda n: self.members.get(n) if self.ready.get(n) else None,
            member_ready=lambda n: self.ready[n],
            member_names=lambda: sorted(self.members),
            workers=2,
            emit_event=lambda obj, type_, reason, message: self.events.append(
                (obj["kind"], type_, reason, message)
            ),
            **options,
        )
        self.hub.watchers = [lambda ev, obj: loop.call_soon_threadsafe(self._hub_event, ev, obj)]
        for name, member in self.members.items():
            member.watchers = [
                lambda ev, obj, n=name: rt.copies._apply_event((n, obj["apiVersion"], obj["kind"]), ev, obj)
            ]
            rt.copies._replace((name, "apps/v1", "Deployment"), member.list("apps/v1", "Deployment"))
        self.rt = rt
        return rt

    def _hub_event(self, event: str, obj: dict[str, Any]) -> None:
        rt = self.rt
        if rt is None:
            return
        kind = obj["kind"]
        if kind == "ResourceBinding":
            rt.on_binding(event, obj)
        elif kind in ("PropagationPolicy", "ClusterPropagationPolicy"):
            rt.on_policy(event, obj)
        elif kind == "PodGroup":
            rt.on_pod_group(event, obj)
        elif kind == "FederatedResourceQuota":
            rt.on_quota(event, obj)
        else:
            rt.on_template(event, obj)

    async def settle(self) -> None:
        assert self.rt is not None
        for _ in range(3):  # idle, and still idle after watch events in flight were delivered
            for queue in self.rt.queues:
                assert await queue.wait_idle(10, horizon=5), queue.name
            await asyncio.sleep(0.05)

    def copy_on(self, member: str, name: str) -> dict[str, Any] | None:
        return self.members[member].find("apps/v1", "Deployment", name, NS)

    def replicas(self, name: str) -> dict[str, int]:
        out = {}
        for member in self.members:
            obj = self.copy_on(member, name)
            if obj is not None:
                out[member] = obj["spec"]["replicas"]
        return out

    def binding(self, name: str) -> dict[str, Any] | None:
        return self.hub.find(GROUP_VERSION, "ResourceBinding", f"{name}-deployment", NS)

    def writes(self) -> int:
        return self.hub.total_writes() + sum(m.total_writes() for m in self.members.values())


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next(c for c in ((obj or {}).get("status") or {}).get("conditions") or () if c["type"] == type_)


NOT_TEMPLATES = ("ResourceBinding", "PropagationPolicy", "FederatedResourceQuota", "MemberCluster")


async def start(fleet: Fleet, listed: bool = True, settle: bool = True, **options: Any) -> Runtime:
    """A runtime (``options`` for it) that has seen every template; settled unless ``settle`` is False."""
    rt = fleet.runtime(**options)
    for obj in list(fleet.hub.objects.values()):
        if obj["kind"] not in NOT_TEMPLATES:
            rt.on_template(None, obj)
    await rt.preload()
    if listed:  # the hub watch's initial list of templates is complete
        rt.on_templates_listed("apps/v1", "Deployment")
    await rt.start()
    if settle:
        await fleet.settle()
    return rt


async def test_placed_propagated_recorded_with_one_write_per_step(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 10), "test")
    await start(fleet)
    assert fleet.replicas("web") == {"a": 10} or sum(fleet.replicas("web").values()) == 10
    rb = fleet.binding("web")
    assert rb is not None
    assert condition(rb, "Scheduled")["status"] == "True"
    assert condition(rb, "FullyApplied")["status"] == "True"
    assert rb["status"]["schedulerObservedGeneration"] == rb["metadata"]["generation"]
    assert rb["status"]["explanation"]["clusters"]
    items = {i["clusterName"]: i for i in rb["status"]["aggregatedStatus"]}
    for item in items.values():  # every field written is one the CRD keeps (none pruned)
        model = AggregatedStatusItem.model_validate(item)
        assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == item
    for member, copy in ((m, fleet.copy_on(m, "web")) for m in fleet.replicas("web")):
        assert copy is not None
        assert items[member]["memberUID"] == copy["metadata"]["uid"]
        assert items[member]["appliedGeneration"] == copy["metadata"]["generation"]
        assert copy["metadata"]["labels"]["flotilla.dev/binding-name"] == "web-deployment"
    # The binding is created with its decision (one write); one status write records the decision's
    # explanation, the applied copies and what the members report: nothing else, however many
    # watch events came back.
    assert fleet.hub.writes[("apply", "ResourceBinding")] == 1  # the fake's create
    assert fleet.hub.writes[("patch", "ResourceBinding")] == 0
    assert fleet.hub.writes[("patch/status", "ResourceBinding")] == 1, fleet.hub.writes


async def test_restart_reapplies_nothing_and_writes_nothing(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    for i in range(5):
        fleet.hub.apply(deployment(f"w{i}", 2), "test")
    rt = await start(fleet)
    before = fleet.writes()
    placed = {f"w{i}": fleet.replicas(f"w{i}") for i in range(5)}
    await rt.stop()
    await start(fleet)  # a new operator, cold: caches rebuilt from the hub and members
    assert fleet.writes() == before
    assert {f"w{i}": fleet.replicas(f"w{i}") for i in range(5)} == placed


async def test_drift_repaired_from_the_member_watch(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p", clusters=["b"]), "test")
    fleet.hub.apply(deployment("web", 3), "test")
    await start(fleet)
    assert fleet.replicas("web") == {"b": 3}
    copy = fleet.copy_on("b", "web")
    assert copy is not None
    fleet.members["b"].patch(copy, {"spec": {"replicas": 1}})  # someone scales the copy by hand
    await fleet.settle()
    assert fleet.replicas("web") == {"b": 3}
    fleet.members["b"].delete(copy)  # or deletes it
    await fleet.settle()
    assert fleet.replicas("web") == {"b": 3}


async def test_orphan_of_a_binding_deleted_while_down_is_removed(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("gone", 2), "test")
    fleet.hub.apply(deployment("kept", 2), "test")
    rt = await start(fleet)
    assert sum(fleet.replicas("gone").values()) == 2
    await rt.stop()
    fleet.rt = None  # the operator is down: no watch delivers what happens next
    template = fleet.hub.find("apps/v1", "Deployment", "gone", NS)
    assert template is not None
    fleet.hub.delete(template)
    binding = fleet.binding("gone")
    assert binding is not None
    fleet.hub.delete(binding)
    await start(fleet)
    assert fleet.replicas("gone") == {}
    assert sum(fleet.replicas("kept").values()) == 2


async def test_template_deleted_while_down_loses_its_binding_once_templates_are_listed(
    fleet: Fleet,
) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("gone", 2), "test")
    fleet.hub.apply(deployment("kept", 2), "test")
    rt = await start(fleet)
    await rt.stop()
    fleet.rt = None  # the operator is down: the template goes, its binding and copies stay
    template = fleet.hub.find("apps/v1", "Deployment", "gone", NS)
    assert template is not None
    fleet.hub.delete(template)
    await asyncio.sleep(0.05)  # its watch event reaches nobody (not the next runtime)
    # Until every template is known, a binding without one may just not have been listed yet.
    rt = await start(fleet, listed=False)
    assert fleet.binding("gone") is not None
    assert sum(fleet.replicas("gone").values()) == 2
    rt.on_templates_listed("apps/v1", "Deployment")
    await fleet.settle()
    assert fleet.binding("gone") is None
    assert fleet.replicas("gone") == {}
    assert fleet.binding("kept") is not None
    assert sum(fleet.replicas("kept").values()) == 2


def member_cluster(name: str) -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": "MemberCluster", "metadata": {"name": name}, "spec": {}}


async def test_nothing_is_decided_until_every_member_is_known(fleet: Fleet) -> None:
    settled = {"a": True, "b": False}  # b is still listing its nodes after the start
    for name in settled:
        fleet.hub.apply(member_cluster(name), "test")
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet, settle=False, member_settled=settled.__getitem__, fleet_sync_timeout=60)
    await asyncio.sleep(0.5)
    assert fleet.binding("web") is None and fleet.replicas("web") == {}
    settled["b"] = True
    await fleet.settle()
    assert sum(fleet.replicas("web").values()) == 2


async def test_a_member_never_known_holds_scheduling_back_only_until_the_timeout(fleet: Fleet) -> None:
    fleet.hub.apply(member_cluster("a"), "test")
    fleet.hub.apply(member_cluster("gone"), "test")  # registered, never answers
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet, member_settled=lambda name: name != "gone", fleet_sync_timeout=0.3)
    assert sum(fleet.replicas("web").values()) == 2


async def test_scale_moves_only_what_changed(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 4), "test")
    await start(fleet)
    fleet.hub.apply(deployment("web", 20), "test")
    await fleet.settle()
    assert sum(fleet.replicas("web").values()) == 20
    rb = fleet.binding("web")
    assert condition(rb, "Scheduled")["observedGeneration"] == rb["metadata"]["generation"]  # type: ignore[index]


async def test_policy_claim_kept_unless_preempted(fleet: Fleet) -> None:
    fleet.hub.apply(policy("first", clusters=["a"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet)
    assert fleet.replicas("web") == {"a": 2}
    # A later policy of equal priority that would win on name order does not take it over.
    fleet.hub.apply(policy("aaa-later", clusters=["b"]), "test")
    await fleet.settle()
    assert fleet.replicas("web") == {"a": 2}
    assert fleet.binding("web")["spec"]["policyRef"]["name"] == "first"  # type: ignore[index]
    # Higher priority without preemption: still not.
    fleet.hub.apply(policy("higher", priority=5, clusters=["b"]), "test")
    await fleet.settle()
    assert fleet.binding("web")["spec"]["policyRef"]["name"] == "first"  # type: ignore[index]
    # Higher priority with preemption Always: taken over, and the copy moves.
    fleet.hub.apply(policy("higher", priority=5, preemption="Always", clusters=["b"]), "test")
    await fleet.settle()
    assert fleet.binding("web")["spec"]["policyRef"]["name"] == "higher"  # type: ignore[index]
    assert fleet.replicas("web") == {"b": 2}
    # The claiming policy is deleted: the workload is free to match again.
    await fleet.settle()


async def test_waits_once_then_placed_when_capacity_frees(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("big", 1, gpus=16), "test")
    rt = await start(fleet)
    rb = fleet.binding("big")
    cond = condition(rb, "Scheduled")
    assert cond["status"] == "False" and cond["message"].startswith("0/2")
    status_writes = fleet.hub.writes[("patch/status", "ResourceBinding")]
    rt.notify_capacity_changed("a")  # nothing really freed: the same answer costs no write
    await asyncio.sleep(0.7)
    await fleet.settle()
    assert fleet.hub.writes[("patch/status", "ResourceBinding")] == status_writes
    fleet.cache.update_cluster(ClusterInfo("b", {"b-big": gpu_node("b-big", 16)}))
    rt.notify_capacity_changed("b")
    await asyncio.sleep(0.7)
    await fleet.settle()
    assert fleet.replicas("big") == {"b": 1}
    rb = fleet.binding("big")
    assert condition(rb, "Scheduled")["status"] == "True"
    assert condition(rb, "Scheduled")["message"].startswith("scheduled to b")


async def test_unreachable_member_is_not_counted_ready(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p", clusters=["a", "b"]), "test")
    dep = deployment("web", 8, gpus=8)  # a: 2 nodes of 8 GPUs, b: the same -> split 2/... by capacity
    dep["spec"]["replicas"] = 4
    fleet.hub.apply(dep, "test")
    rt = await start(fleet)
    assert fleet.replicas("web") == {"a": 2, "b": 2}
    for member in ("a", "b"):
        copy = fleet.copy_on(member, "web")
        assert copy is not None
        fleet.members[member].patch(
            copy,
            {
                "status": {
                    "replicas": 2,
                    "readyReplicas": 2,
                    "availableReplicas": 2,
                    "updatedReplicas": 2,
                    "observedGeneration": copy["metadata"]["generation"],
                }
            },
            "status",
        )
    await fleet.settle()
    hub_dep = fleet.hub.find("apps/v1", "Deployment", "web", NS)
    assert hub_dep is not None
    assert hub_dep["status"]["readyReplicas"] == 4
    assert hub_dep["status"]["observedGeneration"] == hub_dep["metadata"]["generation"]
    fleet.ready["b"] = False
    rt.notify_capacity_changed("b")
    await asyncio.sleep(0.1)
    await fleet.settle()
    hub_dep = fleet.hub.find("apps/v1", "Deployment", "web", NS)
    assert hub_dep is not None
    assert hub_dep["status"]["readyReplicas"] == 2
    items = {i["clusterName"]: i for i in fleet.binding("web")["status"]["aggregatedStatus"]}  # type: ignore[index]
    assert items["b"]["health"] == "Unknown"


async def test_template_deleted_removes_binding_and_copies(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet)
    template = fleet.hub.find("apps/v1", "Deployment", "web", NS)
    assert template is not None
    fleet.hub.delete(template)
    await fleet.settle()
    assert fleet.binding("web") is None
    assert fleet.replicas("web") == {}


async def test_failed_hub_write_is_retried_with_backoff(fleet: Fleet) -> None:
    from kubernetes.client import ApiException

    failures = {"n": 0}

    def flaky(verb: str, obj: dict[str, Any]) -> Exception | None:
        if verb in ("apply", "patch") and obj["kind"] == "ResourceBinding" and failures["n"] < 2:
            failures["n"] += 1
            return ApiException(status=500, reason="etcd is busy")
        return None

    fleet.hub.fail = flaky
    fleet.hub.apply(policy("p"), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet)
    await asyncio.sleep(0.5)
    await fleet.settle()
    assert failures["n"] == 2
    assert sum(fleet.replicas("web").values()) == 2
    # The reservations of the failed attempts were released: only the final decision holds GPUs.
    assert fleet.cache.is_assumed(f"{NS}/web-deployment")


async def test_member_not_connected_yet_is_applied_when_it_connects(fleet: Fleet) -> None:
    fleet.ready["b"] = False  # the operator starts before it reaches member b
    fleet.hub.apply(policy("p", clusters=["b"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    rt = fleet.runtime()
    rt.on_template(None, fleet.hub.find("apps/v1", "Deployment", "web", NS) or {})
    await rt.preload()
    await rt.start()

    async def until(predicate: Any) -> None:
        for _ in range(100):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    def not_applied() -> bool:
        rb = fleet.binding("web")
        conds = {c["type"]: c for c in ((rb or {}).get("status") or {}).get("conditions") or ()}
        return "not connected" in conds.get("FullyApplied", {}).get("message", "")

    await until(not_applied)  # recorded, and retried with backoff meanwhile
    assert fleet.replicas("web") == {}
    fleet.ready["b"] = True
    rt.notify_capacity_changed("b")
    await until(lambda: fleet.replicas("web") == {"b": 2})
    await fleet.settle()
    assert condition(fleet.binding("web"), "FullyApplied")["status"] == "True"


async def test_reservation_confirmed_by_the_members_pods_not_by_health(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p", clusters=["a"]), "test")
    fleet.hub.apply(deployment("web", 2, gpus=8), "test")
    await start(fleet)
    key = f"{NS}/web-deployment"
    assert fleet.cache.assumed_pods(key) == 2  # the copy exists, its pods do not yet
    copy = fleet.copy_on("a", "web")
    assert copy is not None
    template = copy["spec"]["template"]
    for i, node in enumerate(("a-0", "a-1")):  # the member binds the pods (not Ready yet)
        pod = {
            "metadata": {**template["metadata"], "name": f"web-{i}", "namespace": NS, "uid": f"u{i}"},
            "spec": {**template["spec"], "nodeName": node},
            "status": {"phase": "Pending"},
        }
        info = pod_info(pod)
        assert info is not None
        fleet.cache.add_pod("a", info)
    assert not fleet.cache.is_assumed(key)  # counted once, by the pods, before any health verdict
    assert all(n.free[GPU] == 0 for n in fleet.cache.snapshot().clusters["a"].nodes.values())


async def test_copies_applied_before_pod_labels_are_not_reapplied(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet.hub.apply(policy("p", clusters=["b"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    unlabelled = functools.partial(propagation.prepare_for_member, pod_labels=False)
    with monkeypatch.context() as patch:
        patch.setattr(propagation, "prepare_for_member", unlabelled)  # an operator of before
        rt = await start(fleet)
        await rt.stop()
    before, copy = fleet.writes(), fleet.copy_on("b", "web")
    assert copy is not None and "flotilla.dev/binding" not in copy["spec"]["template"]["metadata"]["labels"]
    rt = await start(fleet)  # upgraded: nothing changed, nothing re-applied (no rollout)
    assert fleet.writes() == before
    fleet.hub.apply(deployment("web", 3), "test")  # a real change: applied, with the pod label
    await fleet.settle()
    copy = fleet.copy_on("b", "web")
    assert copy is not None and copy["spec"]["replicas"] == 3
    assert copy["spec"]["template"]["metadata"]["labels"]["flotilla.dev/binding"] == "web-deployment"


async def test_a_secret_the_operator_may_not_read_is_left_out_and_said_once(fleet: Fleet) -> None:
    """Without rbac.readWorkloadSecrets the chart lets the operator read no Secret of a workload:
    the copy and its ConfigMap are propagated, the Secret is not, and one Warning says so."""
    fleet.hub.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": NS}}, "t"
    )
    fleet.hub.apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": NS}}, "t"
    )
    web = deployment("web", 2)
    web["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "cfg"}},
        {"secretRef": {"name": "token"}},
    ]
    read = fleet.hub.get

    def get(api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if kind == "Secret":
            raise ApiException(status=403, reason="Forbidden")
        return read(api_version, kind, name, namespace)

    fleet.hub.get = get  # type: ignore[method-assign]
    fleet.hub.apply(policy("p", clusters=["a"]), "test")
    fleet.hub.apply(web, "test")
    rt = await start(fleet)
    assert fleet.copy_on("a", "web") is not None
    assert fleet.members["a"].find("v1", "ConfigMap", "cfg", NS) is not None
    assert fleet.members["a"].find("v1", "Secret", "token", NS) is None
    web["spec"]["replicas"] = 3  # reconciled again: no second Warning
    fleet.hub.apply(web, "test")
    await fleet.settle()
    assert fleet.copy_on("a", "web")["spec"]["replicas"] == 3  # type: ignore[index]
    warned = [e for e in fleet.events if e[2] == "DependencyNotPropagated"]
    assert warned == [
        (
            "Deployment",
            "Warning",
            "DependencyNotPropagated",
            f"Secret {NS}/token is not propagated: the operator may not read it on the hub (chart value "
            "rbac.readWorkloadSecrets); create it on the member clusters",
        )
    ]
    assert rt is fleet.rt


async def test_a_member_turning_ready_resets_the_backoff_of_its_bindings(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p", clusters=["b"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    rt = await start(fleet)
    key = (NS, "web-deployment")
    fleet.ready["b"] = False
    rt._member_changed("b")
    for _ in range(10):  # tries against the member while it was away
        rt.propagation_queue.add_rate_limited(key)
    assert rt.propagation_queue.failures(key) == 10
    fleet.ready["b"] = True
    rt._member_changed("b")  # back: its bindings are tried at once, with a fresh backoff
    assert rt.propagation_queue.failures(key) == 0
    await fleet.settle()
    assert fleet.replicas("web") == {"b": 2}
