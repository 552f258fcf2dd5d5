"""Failover on the rig, the cases beyond a killed member (see test_failover.py for that one).

* A partitioned member: its API server is unreachable from the operator only (the operator goes
  through a :class:`~flotilla.rig.partition.Partition`; the member's controllers, KWOK and the
  training operator talk to it directly), so its pods keep running. Its work is recreated on
  another member; when the partition heals, the copies left behind are removed.
* A flapping member (cut and healed every few seconds for a minute): no eviction at all.
* A workload stuck Pending inside a member (the member's kube-scheduler is stopped, so its pods
  are never bound) with ``failover.application``: moved after its toleration.
* The operator stopped while a failover is under way (the NoExecute taint is there, its
  toleration running) and started again: the new operator finishes it from the API.

The operator runs with tuned health settings (as test_failover.py). Stops processes the rig
started: local rig only.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from conftest import BACKEND, Fleet, local_rig
from operator_support import (
    GROUP_VERSION,
    delete_and_wait_gone,
    install_flotilla_crds,
    member_ready,
    new_namespace,
    register_member,
    running_operator,
)
from prometheus_client import REGISTRY
from pytorchjob_support import wait_pytorchjob_running
from test_failover import (
    DEPLOYMENTS,
    DOWN,
    PYTORCHJOBS,
    TUNED,
    WAIT,
    Poller,
    _deployment,
    _get,
    _policy,
    _pytorchjob,
    _targets,
    _tasks,
    _wait_targets,
)

from flotilla import kube
from flotilla.api.taints import UNREACHABLE, parse_time
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.partition import Partition, kubeconfig_through, partition_for

pytestmark = pytest.mark.skipif(BACKEND == "kind", reason="cuts and stops rig processes: local rig only")

BACKUP = {
    "clusterAffinities": [
        {"affinityName": "primary", "clusterNames": ["a"]},
        {"affinityName": "backup", "clusterNames": ["b"]},
    ]
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A rig of this module's own: its tests cut, stop and restart members, and must not depend on
    what the rest of the suite left on the shared one (nor leave anything to it)."""
    with local_rig(tmp_path_factory.mktemp("failover-rig")) as started:
        yield started


@pytest.fixture(scope="module")
def hub(fleet: Fleet) -> ClusterHandle:
    return fleet.hub


@pytest.fixture(scope="module")
def members(fleet: Fleet) -> dict[str, ClusterHandle]:
    return fleet.members


@pytest.fixture(scope="module")
def cut_a(
    fleet: Fleet,
    hub: ClusterHandle,
    members: dict[str, ClusterHandle],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Partition]:
    """Member a registered through a partition (b and c directly); a registered directly again after."""
    install_flotilla_crds(hub)
    part = partition_for(members["a"])
    register_member(hub, kubeconfig_through(members["a"], part, tmp_path_factory.mktemp("partition")))
    for name, member in members.items():
        if name != "a":
            register_member(hub, member)
    try:
        yield part
    finally:
        part.heal()
        register_member(hub, members["a"])
        part.close()


@contextlib.contextmanager
def operator(
    hub: ClusterHandle, members: dict[str, ClusterHandle], ns: str, *objs: dict[str, Any]
) -> Iterator[None]:
    """The operator (tuned), every member Ready; ``objs`` deleted (by the operator) at the end."""
    with running_operator(hub, **TUNED):
        for name in members:
            kube.wait_for(partial(member_ready, hub, name), timeout=WAIT, what=f"member {name} Ready")
        try:
            yield
        finally:
            delete_and_wait_gone(hub, members, *objs)


def _sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def _evictions(cluster: str) -> float:
    return sum(
        _sample("flotilla_failovers_total", cluster=cluster, reason=r)
        for r in ("ClusterUnreachable", "ClusterNotReady", "TaintUntolerated", "ApplicationFailure", "Moved")
    )


def _running_pods(member: ClusterHandle, ns: str) -> int:
    pods = kube.list_objects(member.api_client(), "v1", "Pod", ns)
    return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")


def test_a_partitioned_member_is_handled_like_a_dead_one(
    cut_a: Partition, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    ns = new_namespace(hub, "partition")
    job, web = _pytorchjob(ns, "train"), _deployment(ns, "web", 2)
    a, b = members["a"].api_client(), members["b"].api_client()
    try:
        with operator(hub, members, ns, job, web):
            kube.apply(api, _policy(ns, "train", "kubeflow.org/v1", "PyTorchJob", BACKUP))
            kube.apply(api, _policy(ns, "web", "apps/v1", "Deployment", BACKUP))
            kube.apply(api, job)
            kube.apply(api, web)
            _wait_targets(hub, ns, "train-pytorchjob", {"a": None}, "the gang on a")
            wait_pytorchjob_running(members["a"], ns, "train", expected=2, timeout=WAIT)
            original = kube.wait_for(
                lambda: _get(a, PYTORCHJOBS, ns, "train"), timeout=WAIT, what="gang on a"
            )
            kube.wait_for(lambda: _get(a, DEPLOYMENTS, ns, "web"), timeout=WAIT, what="web on a")
            poller = Poller(members, ns, "train")
            poller.start()
            try:
                cut = time.monotonic()
                cut_a.cut()
                try:
                    kube.wait_for(lambda: _get(b, PYTORCHJOBS, ns, "train"), timeout=WAIT, what="gang on b")
                    moved = time.monotonic() - cut
                    wait_pytorchjob_running(members["b"], ns, "train", expected=2, timeout=WAIT)
                    kube.wait_for(lambda: _get(b, DEPLOYMENTS, ns, "web"), timeout=WAIT, what="web on b")
                    (task,) = _tasks(hub, ns, "train-pytorchjob")
                    assert task["fromCluster"] == "a" and task["reason"] == "ClusterUnreachable"
                    # The partition hides a from the operator only: its copy and pods run on.
                    still = _get(a, PYTORCHJOBS, ns, "train")
                    assert still is not None and still["metadata"]["uid"] == original["metadata"]["uid"]
                    running_on_a = _running_pods(members["a"], ns)
                    assert running_on_a >= 2
                finally:
                    cut_a.heal()
                healed = time.monotonic()
                kube.wait_for(
                    lambda: _get(a, PYTORCHJOBS, ns, "train") is None, timeout=WAIT, what="gang off a"
                )
                cleaned = time.monotonic() - healed
                kube.wait_for(lambda: _get(a, DEPLOYMENTS, ns, "web") is None, timeout=WAIT, what="web off a")
                kube.wait_for(
                    lambda: not _tasks(hub, ns, "train-pytorchjob") and not _tasks(hub, ns, "web-deployment"),
                    timeout=WAIT,
                    what="eviction records dropped",
                )
                time.sleep(3)  # keep polling: nothing may come back on a
            finally:
                poller.stop()
            assert _targets(hub, ns, "train-pytorchjob") == {"b": None}
        for sample in poller.samples:  # never a new copy on a; b's is the only other one
            assert sample.gang.get("a") in (None, DOWN, original["metadata"]["uid"]), sample
        both = [s for s in poller.samples if all(s.gang.get(m) not in (None, DOWN) for m in ("a", "b"))]
        print(
            f"\npartition of a: gang recreated on b {moved:.1f}s after the cut ({running_on_a} pods still "
            f"running on a, unreachable for the operator); {len(both)} of {len(poller.samples)} polls saw "
            f"a's stale copy and b's (the stale one can only be removed once a answers); gone from a "
            f"{cleaned:.1f}s after the partition healed",
            file=sys.__stderr__,
        )
    finally:
        cut_a.heal()


def test_a_flapping_member_causes_no_eviction_storm(
    cut_a: Partition, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    ns = new_namespace(hub, "flap")
    web = _deployment(ns, "web", 1)
    try:
        with operator(hub, members, ns, web):
            kube.apply(api, _policy(ns, "web", "apps/v1", "Deployment", BACKUP))
            kube.apply(api, web)
            _wait_targets(hub, ns, "web-deployment", {"a": 1}, "web on a")
            evictions = _evictions("a")
            flips = _sample(
                "flotilla_cluster_taints_added_total", cluster="a", key=UNREACHABLE, effect="NoSchedule"
            )
            started = time.monotonic()
            while time.monotonic() - started < 60:  # down 5 s, up 3 s, for a minute
                cut_a.cut()
                time.sleep(5)
                cut_a.heal()
                time.sleep(3)
            kube.wait_for(partial(member_ready, hub, "a"), timeout=WAIT, what="member a Ready")
            time.sleep(8)  # a NoExecute taint would be due by now: nothing may move
            seen = (
                _sample(
                    "flotilla_cluster_taints_added_total", cluster="a", key=UNREACHABLE, effect="NoSchedule"
                )
                - flips
            )
            moved = _evictions("a") - evictions
            assert moved == 0, f"{moved} evictions from a flapping member"
            assert _targets(hub, ns, "web-deployment") == {"a": 1} and not _tasks(hub, ns, "web-deployment")
            print(
                f"\nflapping a ({cut_a.cuts} cuts so far, 5 s down / 3 s up for 60 s): NotReady+NoSchedule "
                f"{seen:.0f} times, {moved:.0f} evictions",
                file=sys.__stderr__,
            )
    finally:
        cut_a.heal()


def test_a_workload_stuck_pending_inside_a_member_is_moved(
    fleet: Fleet, cut_a: Partition, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    assert fleet.rig is not None
    api = hub.api_client()
    ns = new_namespace(hub, "stuck")
    web = _deployment(ns, "web", 2)
    policy = _policy(ns, "web", "apps/v1", "Deployment", BACKUP)
    policy["spec"]["failover"] = {
        "application": {"decisionConditions": {"tolerationSeconds": 10}, "purgeMode": "Directly"}
    }
    a, b = members["a"].api_client(), members["b"].api_client()
    fleet.rig.stop_component("a", "kube-scheduler")  # a's pods are never bound
    try:
        with operator(hub, members, ns, web):
            kube.apply(api, policy)
            kube.apply(api, web)
            kube.wait_for(lambda: _get(a, DEPLOYMENTS, ns, "web"), timeout=WAIT, what="web on a")
            placed = time.monotonic()
            _wait_targets(hub, ns, "web-deployment", {"b": 2}, "web moved to b")
            moved = time.monotonic() - placed
            assert _running_pods(members["a"], ns) == 0  # it was stuck there
            (task,) = _tasks(hub, ns, "web-deployment")
            assert task["fromCluster"] == "a" and task["reason"] == "ApplicationFailure"
            assert "tolerationSeconds 10s" in task["message"]
            kube.wait_for(lambda: _get(a, DEPLOYMENTS, ns, "web") is None, timeout=WAIT, what="web off a")

            def available_on_b() -> bool:
                obj = _get(b, DEPLOYMENTS, ns, "web") or {}
                return int((obj.get("status") or {}).get("availableReplicas") or 0) == 2

            kube.wait_for(available_on_b, timeout=WAIT, what="web available on b")
            kube.wait_for(lambda: not _tasks(hub, ns, "web-deployment"), timeout=WAIT, what="record dropped")
            events = kube.list_objects(api, "v1", "Event", ns)
            assert any(
                e.get("reason") == "Evicted" and "ApplicationFailure" in e.get("message", "") for e in events
            )
            print(
                f"\nstuck Pending on a (tolerationSeconds 10): moved to b {moved:.1f}s after its copy was "
                "created on a",
                file=sys.__stderr__,
            )
    finally:
        fleet.rig.start_component("a", "kube-scheduler")


def test_the_operator_stopped_mid_failover_finishes_it_after_a_restart(
    cut_a: Partition, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    ns = new_namespace(hub, "resume")
    job = _pytorchjob(ns, "train")
    placement = {
        **BACKUP,
        "clusterTolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 15}
        ],
    }
    a, b = members["a"].api_client(), members["b"].api_client()

    def no_execute_since() -> Any:
        mc = kube.get(api, GROUP_VERSION, "MemberCluster", "a") or {}
        for taint in (mc.get("spec") or {}).get("taints") or ():
            if taint.get("key") == UNREACHABLE and taint.get("effect") == "NoExecute":
                return parse_time(taint.get("timeAdded"))
        return None

    try:
        with operator(hub, members, ns):  # (nothing deleted: the job stays)
            kube.apply(api, _policy(ns, "train", "kubeflow.org/v1", "PyTorchJob", placement))
            kube.apply(api, job)
            _wait_targets(hub, ns, "train-pytorchjob", {"a": None}, "the gang on a")
            wait_pytorchjob_running(members["a"], ns, "train", expected=2, timeout=WAIT)
            cut_a.cut()
            since = kube.wait_for(no_execute_since, timeout=WAIT, what="a tainted NoExecute")
            # Stopped here: the taint is written, its 15 s toleration is running, nothing moved yet.
            assert _targets(hub, ns, "train-pytorchjob") == {"a": None}
        assert _get(b, PYTORCHJOBS, ns, "train") is None
        time.sleep(3)  # no operator at all for a moment
        try:
            with operator_resuming(hub, members, ns, job):
                kube.wait_for(lambda: _get(b, PYTORCHJOBS, ns, "train"), timeout=WAIT, what="gang on b")
                (task,) = _tasks(hub, ns, "train-pytorchjob")
                assert task["fromCluster"] == "a" and "tolerated for 15s" in task["message"]
                created = parse_time(task["creationTimestamp"])
                assert created is not None and (created - since).total_seconds() >= 14  # the taint's clock
                wait_pytorchjob_running(members["b"], ns, "train", expected=2, timeout=WAIT)
                cut_a.heal()
                kube.wait_for(lambda: _get(a, PYTORCHJOBS, ns, "train") is None, timeout=WAIT, what="off a")
                kube.wait_for(lambda: not _tasks(hub, ns, "train-pytorchjob"), timeout=WAIT, what="dropped")
                assert _targets(hub, ns, "train-pytorchjob") == {"b": None}
        finally:
            cut_a.heal()
        print(
            f"\noperator stopped mid-failover (NoExecute at {since:%H:%M:%S}, tolerated 15 s), restarted: "
            f"evicted at {task['creationTimestamp']}, gang recreated on b, a cleaned after it healed",
            file=sys.__stderr__,
        )
    finally:
        cut_a.heal()


@contextlib.contextmanager
def operator_resuming(
    hub: ClusterHandle, members: dict[str, ClusterHandle], ns: str, *objs: dict[str, Any]
) -> Iterator[None]:
    """The operator again, waiting for every member but a (still cut off) to be Ready."""
    with running_operator(hub, **TUNED):
        for name in members:
            if name != "a":
                kube.wait_for(partial(member_ready, hub, name), timeout=WAIT, what=f"member {name} Ready")
        try:
            yield
        finally:
            delete_and_wait_gone(hub, members, *objs)
