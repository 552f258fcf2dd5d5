"""Cluster failover with the in-memory fleet: taints in, evictions, purge modes and returns out."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fake_kube import FakeApiServer
from test_runtime import GPU, NS, Fleet, condition, deployment, gpu_node, start

from flotilla import metrics
from flotilla.api import GROUP_VERSION
from flotilla.controllers.eviction import eviction_due, new_task
from flotilla.controllers.failover import FailoverSettings, TokenBucket
from flotilla.controllers.runtime import Runtime
from flotilla.scheduler.snapshot import ClusterInfo, Taint, Toleration

UNREACHABLE = "cluster.flotilla.dev/unreachable"
MAINTENANCE = "example.com/maintenance"
PYTORCHJOB = ("kubeflow.org/v1", "PyTorchJob")


def now() -> datetime:
    return datetime.now(UTC)


class FailoverFleet(Fleet):
    """Members a, b and c (two 8-GPU nodes each); members can be lost, tainted and brought back."""

    def __init__(self, settings: FailoverSettings | None = None) -> None:
        super().__init__()
        self.members = {n: FakeApiServer(n) for n in ("a", "b", "c")}
        self.ready = dict.fromkeys(self.members, True)
        self.cache.update_cluster(ClusterInfo("c", {f"c-{i}": gpu_node(f"c-{i}") for i in range(2)}))
        self.settings = settings or FailoverSettings(rate=100, burst=100)
        self.events: list[tuple[str, str, str, str]] = []

    def runtime(self) -> Runtime:
        loop = asyncio.get_running_loop()
        rt = Runtime(
            self.hub,
            self.cache,
            threading.RLock(),
            loop,
            member_client=lambda n: self.members.get(n) if self.ready.get(n) else None,
            member_ready=lambda n: self.ready[n],
            member_names=lambda: sorted(self.members),
            emit_event=lambda obj, type_, reason, message: self.events.append(
                (obj["metadata"]["name"], type_, reason, message)
            ),
            workers=2,
            failover=self.settings,
        )
        self.hub.watchers = [lambda ev, obj: loop.call_soon_threadsafe(self._hub_event, ev, obj)]
        for name, member in self.members.items():
            member.watchers = [
                lambda ev, obj, n=name: loop.call_soon_threadsafe(
                    rt.copies._apply_event, (n, obj["apiVersion"], obj["kind"]), ev, obj
                )
            ]
            for api_version, kind in (("apps/v1", "Deployment"), PYTORCHJOB):
                rt.copies._replace((name, api_version, kind), member.list(api_version, kind))
        self.rt = rt
        return rt

    def taint(self, name: str, *taints: Taint, ready: bool = True) -> None:
        """Give member ``name`` these taints (as the members controller writes them) and readiness."""
        nodes = {f"{name}-{i}": gpu_node(f"{name}-{i}") for i in range(2)}
        self.cache.update_cluster(ClusterInfo(name, nodes, taints=taints, ready=ready))
        self.ready[name] = ready
        assert self.rt is not None
        self.rt.notify_capacity_changed(name)

    def lose(self, name: str, since: datetime | None = None) -> None:
        """Member ``name`` stops answering: NotReady, tainted unreachable NoSchedule and NoExecute."""
        since = since or now()
        self.taint(
            name,
            Taint(UNREACHABLE, "", "NoSchedule", since),
            Taint(UNREACHABLE, "", "NoExecute", since),
            ready=False,
        )

    def back(self, name: str) -> None:
        self.taint(name)

    def copy(
        self, member: str, name: str, kind: tuple[str, str] = ("apps/v1", "Deployment")
    ) -> dict[str, Any] | None:
        return self.members[member].find(kind[0], kind[1], name, NS)

    def targets(self, name: str, kind: str = "deployment") -> dict[str, Any]:
        rb = self.hub.find(GROUP_VERSION, "ResourceBinding", f"{name}-{kind}", NS) or {}
        return {c["name"]: c.get("replicas") for c in rb.get("spec", {}).get("clusters") or ()}

    def tasks(self, name: str, kind: str = "deployment") -> list[dict[str, Any]]:
        rb = self.hub.find(GROUP_VERSION, "ResourceBinding", f"{name}-{kind}", NS) or {}
        return list(rb.get("spec", {}).get("gracefulEvictionTasks") or [])

    def healthy(self, member: str, name: str) -> None:
        """The member's Deployment controller reports the copy rolled out and available."""
        copy = self.copy(member, name)
        assert copy is not None
        n = copy["spec"]["replicas"]
        self.members[member].patch(
            copy,
            {
                "status": {
                    "replicas": n,
                    "readyReplicas": n,
                    "availableReplicas": n,
                    "updatedReplicas": n,
                    "observedGeneration": copy["metadata"]["generation"],
                }
            },
            "status",
        )


@pytest.fixture
async def fleet() -> AsyncIterator[FailoverFleet]:
    f = FailoverFleet()
    yield f
    if f.rt is not None:
        await f.rt.stop()


def policy(
    name: str,
    *,
    clusters: list[str] | None = None,
    division: str = "Aggregated",
    tolerations: list[dict[str, Any]] | None = None,
    purge: str | None = None,
    kind: str = "Deployment",
    api_version: str = "apps/v1",
    every: bool = False,
) -> dict[str, Any]:
    placement: dict[str, Any] = {
        "clusterAffinity": {"clusterNames": clusters or ["a", "b", "c"]},
        "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": division},
    }
    if tolerations:
        placement["clusterTolerations"] = tolerations
    spec: dict[str, Any] = {
        "resourceSelectors": [{"apiVersion": api_version, "kind": kind, **({} if every else {"name": name})}],
        "placement": placement,
    }
    if purge:
        spec["failover"] = {"cluster": {"purgeMode": purge}}
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def pytorchjob(name: str, workers: int = 3, gpus: int = 4) -> dict[str, Any]:
    def role(replicas: int) -> dict[str, Any]:
        container = {"name": "pytorch", "image": "x", "resources": {"requests": {GPU: str(gpus)}}}
        return {"replicas": replicas, "template": {"spec": {"containers": [container]}}}

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"pytorchReplicaSpecs": {"Master": role(1), "Worker": role(workers)}},
    }


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {predicate}")


# ---------------------------------------------------------------------------- pure rules
def test_eviction_due_follows_kubernetes_noexecute_rules() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    taint = Taint(UNREACHABLE, "", "NoExecute", t0)
    later = t0 + timedelta(seconds=10)
    assert eviction_due([taint], [], later).at == t0  # type: ignore[union-attr]
    assert eviction_due([Taint(UNREACHABLE, "", "NoSchedule", t0)], [], later) is None
    forever = Toleration(UNREACHABLE, "Exists", effect="NoExecute")
    assert eviction_due([taint], [forever], later) is None
    for_60 = Toleration(UNREACHABLE, "Exists", effect="NoExecute", toleration_seconds=60)
    for_30 = Toleration("", "Exists", toleration_seconds=30)
    due = eviction_due([taint], [for_60, for_30], later)
    assert due is not None and due.at == t0 + timedelta(seconds=30) and due.tolerated_for == 30
    assert due.reason == "ClusterUnreachable"
    user = eviction_due([Taint(MAINTENANCE, "", "NoExecute")], [], later)
    assert user is not None and user.reason == "TaintUntolerated" and user.at == later


def test_a_gang_is_never_kept_gracefully() -> None:
    due = eviction_due([Taint(UNREACHABLE, "", "NoExecute", now())], [], now())
    assert due is not None
    gang = new_task("a", due, mode="Gracefully", grace_seconds=600, replicas=None, gang=True, now=now())
    assert gang["purgeMode"] == "Directly" and "suppressDeletion" not in gang
    never = new_task("a", due, mode="Never", grace_seconds=600, replicas=None, gang=True, now=now())
    assert never["suppressDeletion"] is True
    graceful = new_task("a", due, mode="Gracefully", grace_seconds=600, replicas=3, gang=False, now=now())
    assert graceful["suppressDeletion"] is True and graceful["gracePeriodSeconds"] == 600


def test_token_bucket() -> None:
    clock = {"t": 0.0}
    bucket = TokenBucket(2.0, 2, clock=lambda: clock["t"])
    for _ in range(2):
        assert bucket.wait() == 0
        bucket.take()
    assert bucket.wait() == pytest.approx(0.5)
    clock["t"] += 0.5
    assert bucket.wait() == 0


def test_settings_from_env() -> None:
    s = FailoverSettings.from_env(
        {
            "FLOTILLA_FAILOVER": "false",
            "FLOTILLA_FAILOVER_EVICTION_RATE": "0.5",
            "FLOTILLA_FAILOVER_PURGE_MODE": "Graciously",
            "FLOTILLA_GRACEFUL_EVICTION_TIMEOUT": "60",
        }
    )
    assert (s.enabled, s.rate, s.burst, s.purge_mode, s.grace_period) == (False, 0.5, 20, "Gracefully", 60)
    assert FailoverSettings.from_env({}) == FailoverSettings()


# ---------------------------------------------------------------------------- the controllers
async def test_divided_moves_only_the_lost_share(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("web", division="Weighted"), "test")
    fleet.hub.apply(deployment("web", 6), "test")
    await start(fleet)
    assert fleet.targets("web") == {"a": 2, "b": 2, "c": 2}
    for m in "abc":
        fleet.healthy(m, "web")
    await fleet.settle()
    uids = {m: fleet.copy(m, "web")["metadata"]["uid"] for m in "bc"}  # type: ignore[index]
    fleet.lose("a")
    await fleet.settle()
    assert fleet.targets("web") == {"b": 3, "c": 3}
    for m in "bc":  # the survivors' copies were scaled, not re-created
        copy = fleet.copy(m, "web")
        assert copy is not None and copy["metadata"]["uid"] == uids[m] and copy["spec"]["replicas"] == 3
    (task,) = fleet.tasks("web")
    assert task["fromCluster"] == "a" and task["reason"] == "ClusterUnreachable" and task["replicas"] == 2
    assert task["purgeMode"] == "Gracefully" and task["suppressDeletion"] is True  # Karmada's default
    rb = fleet.binding("web")
    scheduled = condition(rb, "Scheduled")
    assert scheduled["reason"] == "Evicted" and "evicted from a (ClusterUnreachable)" in scheduled["message"]
    assert "rescheduled from a:2,b:2,c:2 to b:3,c:3" in scheduled["message"]
    assert condition(rb, "FullyApplied")["status"] == "True"  # the kept old copy is not "pending"
    evicted = [e for e in fleet.events if e[2] == "Evicted"]
    assert len(evicted) == 1 and evicted[0][1] == "Warning" and "a (ClusterUnreachable)" in evicted[0][3]
    # b and c were healthy before; scaled to 3 they are not yet: a's old copy is still kept.
    assert fleet.tasks("web")[0]["suppressDeletion"] is True
    for m in "bc":
        fleet.healthy(m, "web")
    await until(lambda: fleet.tasks("web")[0]["suppressDeletion"] is False)


async def test_a_gang_moves_whole_and_its_old_copy_goes_when_the_member_returns(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("train", kind="PyTorchJob", api_version="kubeflow.org/v1"), "test")
    fleet.hub.apply(pytorchjob("train"), "test")  # 4 pods x 4 GPUs: one cluster holds the gang
    await start(fleet)
    (first,) = fleet.targets("train", "pytorchjob")
    assert fleet.copy(first, "train", PYTORCHJOB) is not None
    fleet.lose(first)
    await fleet.settle()
    (second,) = fleet.targets("train", "pytorchjob")
    assert second != first
    assert fleet.copy(second, "train", PYTORCHJOB) is not None
    (task,) = fleet.tasks("train", "pytorchjob")
    # Gracefully (the default) is Directly for a gang: the old copy is removed as soon as it can be.
    assert task["fromCluster"] == first and task["purgeMode"] == "Directly" and "suppressDeletion" not in task
    assert fleet.copy(first, "train", PYTORCHJOB) is not None  # unreachable: cannot be removed yet
    rb = fleet.hub.find(GROUP_VERSION, "ResourceBinding", "train-pytorchjob", NS) or {}
    items = {i["clusterName"]: i for i in rb["status"]["aggregatedStatus"]}
    assert "pending removal" in items[first]["appliedMessage"]
    fleet.back(first)
    await until(lambda: fleet.copy(first, "train", PYTORCHJOB) is None)
    await fleet.settle()
    assert fleet.tasks("train", "pytorchjob") == []  # back, clean: the record is dropped
    assert list(fleet.targets("train", "pytorchjob")) == [second]  # and nothing moves back


async def test_toleration_seconds_delay_the_eviction(fleet: FailoverFleet) -> None:
    tolerate = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}]
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    fleet.hub.apply(policy("patient", clusters=["a", "b"], tolerations=tolerate), "test")
    fleet.hub.apply(policy("loyal", clusters=["a", "b"], tolerations=forever), "test")
    fleet.hub.apply(deployment("patient", 1), "test")
    fleet.hub.apply(deployment("loyal", 1), "test")
    await start(fleet)
    assert fleet.targets("patient") == {"a": 1} and fleet.targets("loyal") == {"a": 1}
    fleet.lose("a", since=now() - timedelta(seconds=58.5))  # 1.5 s of toleration left
    await asyncio.sleep(0.5)
    assert fleet.targets("patient") == {"a": 1}  # still tolerated
    await until(lambda: fleet.targets("patient") == {"b": 1}, timeout=10)
    (task,) = fleet.tasks("patient")
    assert "tolerated for 60s" in task["message"]
    await fleet.settle()
    assert fleet.targets("loyal") == {"a": 1} and fleet.tasks("loyal") == []  # tolerated for ever


async def test_evictions_are_rate_limited_fleet_wide() -> None:
    fleet = FailoverFleet(FailoverSettings(rate=2.0, burst=1))
    try:
        fleet.hub.apply(policy("p", clusters=["a", "b"], every=True), "test")
        for i in range(4):
            fleet.hub.apply(deployment(f"w{i}", 1), "test")
        rt = await start(fleet)
        assert all(fleet.targets(f"w{i}") == {"a": 1} for i in range(4))
        clock = {"t": 0.0}
        rt.failover.limiter = TokenBucket(2.0, 1, clock=lambda: clock["t"])
        fleet.lose("a")
        await asyncio.sleep(1.0)  # the queue wakes the waiting keys every 0.5 s: the clock stands still

        def moved() -> int:
            return sum(fleet.targets(f"w{i}") != {"a": 1} for i in range(4))

        assert moved() == 1
        assert metrics.FAILOVER_WAITING.labels(reason="RateLimited")._value.get() == 3
        clock["t"] += 0.5  # one more token
        await until(lambda: moved() == 2)
        await asyncio.sleep(0.7)
        assert moved() == 2
        clock["t"] += 10  # the bucket holds at most one (burst 1): a long pause saves up no more
        await until(lambda: moved() == 3)
        await asyncio.sleep(0.7)
        assert moved() == 3
        clock["t"] += 0.5
        await until(lambda: moved() == 4)
    finally:
        if fleet.rt is not None:
            await fleet.rt.stop()


async def test_gracefully_keeps_the_old_copy_until_the_new_one_is_healthy(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("web", clusters=["a", "b"]), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet)
    assert fleet.targets("web") == {"a": 2}
    old_uid = fleet.copy("a", "web")["metadata"]["uid"]  # type: ignore[index]
    # A maintenance NoExecute taint on a member that still answers: the old copy can stay meanwhile.
    fleet.taint("a", Taint(MAINTENANCE, "", "NoExecute", now()))
    await fleet.settle()
    assert fleet.targets("web") == {"b": 2}
    (task,) = fleet.tasks("web")
    assert task["reason"] == "TaintUntolerated" and task["suppressDeletion"] is True
    assert fleet.copy("b", "web") is not None
    kept = fleet.copy("a", "web")
    assert kept is not None and kept["metadata"]["uid"] == old_uid  # listed and kept, not re-applied
    fleet.healthy("b", "web")  # the replacement is up
    await until(lambda: fleet.copy("a", "web") is None)
    await fleet.settle()
    (task,) = fleet.tasks("web")  # a is still tainted: the record stays, the copy is gone
    assert task["suppressDeletion"] is False and "the replacement is healthy" in task["message"]
    fleet.back("a")
    await until(lambda: fleet.tasks("web") == [])


async def test_graceful_eviction_ends_with_the_grace_period() -> None:
    # 5 s of grace: the check that the old copy is still there right after the targets moved
    # must not race the grace period on a loaded machine (with 1 s it failed once in CI, while
    # the e2e rig's control planes were still running beside the unit tests).
    fleet = FailoverFleet(FailoverSettings(rate=100, burst=100, grace_period=5))
    try:
        fleet.hub.apply(policy("web", clusters=["a", "b"]), "test")
        fleet.hub.apply(deployment("web", 2), "test")
        await start(fleet)
        fleet.taint("a", Taint(MAINTENANCE, "", "NoExecute", now()))
        await until(lambda: fleet.targets("web") == {"b": 2})
        assert fleet.copy("a", "web") is not None
        await until(lambda: fleet.copy("a", "web") is None, timeout=25)  # never healthy: 5 s later
        assert "the grace period ended" in fleet.tasks("web")[0]["message"]
    finally:
        if fleet.rt is not None:
            await fleet.rt.stop()


async def test_never_keeps_the_old_copy_until_a_user_clears_it(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("web", clusters=["a", "b"], purge="Never"), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    await start(fleet)
    fleet.lose("a")
    await fleet.settle()
    assert fleet.targets("web") == {"b": 2}
    fleet.healthy("b", "web")
    fleet.back("a")
    await asyncio.sleep(0.3)
    await fleet.settle()
    assert fleet.copy("a", "web") is not None  # healthy replacement, member back: still kept
    (task,) = fleet.tasks("web")
    assert task["purgeMode"] == "Never" and task["suppressDeletion"] is True
    rb = fleet.binding("web")
    assert rb is not None
    fleet.hub.patch(rb, {"spec": {"gracefulEvictionTasks": [{**task, "suppressDeletion": False}]}})
    await until(lambda: fleet.copy("a", "web") is None)
    await until(lambda: fleet.tasks("web") == [])


async def test_restart_mid_failover_resumes_from_the_binding(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("web", clusters=["a", "b"], purge="Directly"), "test")
    fleet.hub.apply(deployment("web", 2), "test")
    rt = await start(fleet)
    assert fleet.targets("web") == {"a": 2}

    def b_fails(verb: str, obj: dict[str, Any]) -> Exception | None:
        from kubernetes.client import ApiException

        return ApiException(status=503, reason="unavailable") if verb == "apply" else None

    fleet.members["b"].fail = b_fails  # the replacement cannot be applied before the operator dies
    fleet.lose("a")
    await until(lambda: fleet.targets("web") == {"b": 2})
    assert fleet.copy("b", "web") is None
    await rt.stop()
    fleet.rt = None
    fleet.members["b"].fail = lambda _verb, _obj: None
    evictions = len([e for e in fleet.events if e[2] == "Evicted"])

    rt = await start(fleet)  # cold: everything from the hub and the members
    fleet.lose("a")  # (the new operator's inventory: still lost)
    await fleet.settle()
    assert fleet.targets("web") == {"b": 2}
    assert fleet.copy("b", "web") is not None  # the replacement, applied by the new operator
    assert len([e for e in fleet.events if e[2] == "Evicted"]) == evictions  # not evicted twice
    (task,) = fleet.tasks("web")
    assert task["fromCluster"] == "a"
    scheduled = condition(fleet.binding("web"), "Scheduled")
    assert "evicted from a (ClusterUnreachable)" in scheduled["message"]
    fleet.back("a")
    await until(lambda: fleet.copy("a", "web") is None)
    await until(lambda: fleet.tasks("web") == [])


async def test_return_deletes_moved_copies_and_keeps_the_others(fleet: FailoverFleet) -> None:
    forever = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    fleet.hub.apply(policy("moved", clusters=["a", "b"], purge="Directly"), "test")
    fleet.hub.apply(policy("stays", clusters=["a", "b"], tolerations=forever), "test")
    fleet.hub.apply(deployment("moved", 1), "test")
    fleet.hub.apply(deployment("stays", 1), "test")
    await start(fleet)
    stays = fleet.copy("a", "stays")
    assert stays is not None and fleet.copy("a", "moved") is not None
    fleet.lose("a")
    await fleet.settle()
    assert fleet.targets("moved") == {"b": 1} and fleet.targets("stays") == {"a": 1}
    applies_on_a = fleet.members["a"].writes[("apply", "Deployment")]
    fleet.back("a")
    await until(lambda: fleet.copy("a", "moved") is None)
    await fleet.settle()
    again = fleet.copy("a", "stays")
    assert again is not None and again["metadata"]["uid"] == stays["metadata"]["uid"]
    assert fleet.members["a"].writes[("apply", "Deployment")] == applies_on_a  # nothing re-applied there
    assert fleet.tasks("moved") == []
    assert fleet.targets("moved") == {"b": 1}


async def test_nothing_moves_when_no_other_cluster_fits(fleet: FailoverFleet) -> None:
    fleet.hub.apply(policy("big", clusters=["a", "b"]), "test")
    fleet.hub.apply(deployment("big", 2, gpus=8), "test")  # a: two 8-GPU nodes
    await start(fleet)
    (first,) = fleet.targets("big")
    other = "b" if first == "a" else "a"
    fleet.cache.update_cluster(ClusterInfo(other, {f"{other}-0": gpu_node(f"{other}-0", 4)}))
    fleet.lose(first)
    await fleet.settle()
    assert fleet.targets("big") == {first: 2}  # stays where it was, waiting for room
    assert fleet.tasks("big") == []
    assert [e[2] for e in fleet.events].count("FailoverPending") == 1
    assert fleet.rt is not None and fleet.rt.failover.pending
    fleet.cache.update_cluster(
        ClusterInfo(other, {f"{other}-{i}": gpu_node(f"{other}-{i}") for i in range(2)})
    )
    fleet.rt.notify_capacity_changed(other)
    await until(lambda: fleet.targets("big") == {other: 2})


def test_controller_events_are_posted_without_a_kopf_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kopf's event queue exists only inside its handlers: a controller's Event is posted directly."""
    from flotilla import operator

    posted: list[tuple[str, str, dict[str, Any]]] = []
    done = threading.Event()

    def request(_api: Any, method: str, path: str, body: dict[str, Any], *_a: Any, **_k: Any) -> None:
        posted.append((method, path, body))
        done.set()

    monkeypatch.setattr(operator.kube, "request", request)
    monkeypatch.setattr(operator.STATE, "hub_api", object())
    template = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "uid": "u1"},
    }
    operator._emit(template, "Warning", "Evicted", "evicted from a (ClusterUnreachable)")
    assert done.wait(5)
    ((method, path, body),) = posted
    assert (method, path) == ("POST", f"/api/v1/namespaces/{NS}/events")
    assert body["involvedObject"] == {**template["metadata"], "apiVersion": "apps/v1", "kind": "Deployment"}
    assert (body["type"], body["reason"]) == ("Warning", "Evicted")


def test_a_multi_role_divided_binding_keeps_its_survivors_units() -> None:
    """A LeaderWorkerSet (leader + worker per group) divided b:3, a:1; a is lost: b keeps its three
    groups and only a's group is placed; a fresh division would have taken b down to two."""
    from flotilla.controllers.scheduling import SchedulingController
    from flotilla.controllers.workloads import scheduler_workload
    from flotilla.scheduler import Scheduler
    from flotilla.scheduler.snapshot import Snapshot

    request = {"resourceRequest": {GPU: "1"}}
    binding = {
        "metadata": {"name": "lws-leaderworkerset", "namespace": NS},
        "spec": {
            "resource": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
            "replicas": 4,
            "components": [
                {"name": "leader", "replicas": 4, "replicaRequirements": request},
                {"name": "worker", "replicas": 4, "replicaRequirements": request},
            ],
            "placement": {
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Weighted",
                }
            },
            "clusters": [{"name": "b", "replicas": 3}],  # the survivors (a's share is lost)
        },
    }
    snap = Snapshot({n: ClusterInfo(n, {f"{n}-0": gpu_node(f"{n}-0")}) for n in ("a", "b", "c")})
    workload = scheduler_workload(binding, evicted_from=frozenset({"a"}), keep_current=True)
    assert workload.units == 4
    outcome = Scheduler().schedule(snap, workload)
    assert outcome.ok
    targets = {t["name"]: t["replicas"] for t in SchedulingController._targets(binding, outcome)}
    assert targets["b"] >= 3 and sum(targets.values()) == 4 and "a" not in targets
    fresh = Scheduler().schedule(
        snap, scheduler_workload(binding, evicted_from=frozenset({"a"}), keep_current=False)
    )
    assert {t["name"]: t["replicas"] for t in SchedulingController._targets(binding, fresh)} == {
        "b": 2,
        "c": 2,
    }
