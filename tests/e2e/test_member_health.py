"""Member health on the rig: a member's API server dies -> NotReady, tainted, avoided; back -> clean.

Also ``kubectl flotilla cordon|uncordon`` against the hub. Stops a process the rig started, so it
runs on the local rig only.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from conftest import BACKEND, Fleet
from kopf.testing import KopfRunner
from operator_support import (
    GROUP_VERSION,
    WAIT,
    binding,
    condition_of,
    fleet_operator,
    gpu_deployment,
    install_flotilla_crds,
    member_ready,
    register_member,
)
from prometheus_client import REGISTRY

from flotilla import cli, kube
from flotilla.rig.cluster import ClusterHandle

pytestmark = pytest.mark.skipif(BACKEND == "kind", reason="stops a member's API server: local rig only")

GRACE = 10  # FLOTILLA_MEMBER_NOEXECUTE_GRACE for this module (default 30)
UNREACHABLE = "cluster.flotilla.dev/unreachable"
UNSCHEDULABLE = "cluster.flotilla.dev/unschedulable"
USER_TAINT = {"key": "example.com/maintenance-window", "value": "sunday", "effect": "PreferNoSchedule"}
SETTINGS = {"FLOTILLA_MEMBER_NOEXECUTE_GRACE": str(GRACE)}  # everything else: the defaults


@pytest.fixture(scope="module")
def operator(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> Iterator[KopfRunner]:
    install_flotilla_crds(hub)
    register_member(hub, members["a"])
    api = hub.api_client()
    mc = kube.get(api, GROUP_VERSION, "MemberCluster", "a")
    assert mc is not None
    kube.patch(api, mc, {"spec": {"taints": [USER_TAINT]}})  # a user's taint, to be kept throughout
    with fleet_operator(hub, members, **SETTINGS) as runner:
        yield runner


def _member(hub: ClusterHandle, name: str) -> dict[str, Any]:
    mc = kube.get(hub.api_client(), GROUP_VERSION, "MemberCluster", name)
    assert mc is not None
    return mc


def _taints(mc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(t["key"], t["effect"]): t for t in (mc.get("spec") or {}).get("taints") or []}


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _place_on(hub: ClusterHandle, clusters: list[str]) -> tuple[str, str]:
    """A Deployment with a Duplicated policy over ``clusters``; returns (namespace, name)."""
    api = hub.api_client()
    ns = f"health-{uuid.uuid4().hex[:5]}"
    name = "infer"
    kube.ensure_namespace(api, ns)
    kube.apply(
        api,
        {
            "apiVersion": GROUP_VERSION,
            "kind": "PropagationPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                "placement": {
                    "clusterAffinity": {"clusterNames": clusters},
                    "replicaScheduling": {"replicaSchedulingType": "Duplicated"},
                },
            },
        },
    )
    kube.apply(api, gpu_deployment(ns, name))
    return ns, name


def _placed(hub: ClusterHandle, ns: str, name: str) -> dict[str, Any] | None:
    rb = binding(hub, ns, f"{name}-deployment")
    if (condition_of(rb, "Scheduled") or {}).get("status") != "True":
        return None
    return rb


def test_a_lost_member_is_tainted_avoided_and_cleaned_up_when_back(
    operator: KopfRunner, fleet: Fleet, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    assert fleet.rig is not None
    ready_before = condition_of(_member(hub, "a"), "Ready")
    assert ready_before is not None and ready_before["status"] == "True"
    stopped = time.monotonic()
    fleet.rig.stop_component("a", "kube-apiserver")
    try:
        # NotReady with the reason, and the NoSchedule taint at once.
        def unreachable() -> dict[str, Any] | None:
            mc = _member(hub, "a")
            cond = condition_of(mc, "Ready") or {}
            tainted = (UNREACHABLE, "NoSchedule") in _taints(mc)
            return mc if cond.get("status") == "False" and tainted else None

        mc = kube.wait_for(unreachable, timeout=WAIT, what="member a NotReady and tainted NoSchedule")
        seen_no_schedule = time.monotonic() - stopped
        cond = condition_of(mc, "Ready")
        assert cond is not None
        assert cond["reason"] == "Unreachable", cond
        assert "cannot connect to the member API server" in cond["message"]
        assert _time(cond["lastTransitionTime"]) >= _time(ready_before["lastTransitionTime"])
        no_schedule = _taints(mc)[(UNREACHABLE, "NoSchedule")]
        assert _taints(mc)[(USER_TAINT["key"], USER_TAINT["effect"])]["value"] == "sunday"

        # A workload applied now does not go to a.
        ns, name = _place_on(hub, ["a", "b"])
        rb = kube.wait_for(lambda: _placed(hub, ns, name), timeout=WAIT, what="the new workload placed")
        assert [c["name"] for c in rb["spec"]["clusters"]] == ["b"]
        kube.wait_for(
            lambda: kube.get(members["b"].api_client(), "apps/v1", "Deployment", name, ns),
            timeout=WAIT,
            what="the copy on b",
        )

        # NoExecute once the member has been tainted for the grace period.
        def executing() -> dict[str, Any] | None:
            mc = _member(hub, "a")
            return mc if (UNREACHABLE, "NoExecute") in _taints(mc) else None

        mc = kube.wait_for(executing, timeout=WAIT, what="member a tainted NoExecute")
        seen_no_execute = time.monotonic() - stopped
        no_execute = _taints(mc)[(UNREACHABLE, "NoExecute")]
        assert _taints(mc)[(UNREACHABLE, "NoSchedule")] == no_schedule  # unchanged meanwhile
        waited = _time(no_execute["timeAdded"]) - _time(no_schedule["timeAdded"])
        assert waited.total_seconds() >= GRACE - 1  # timestamps have whole seconds
        still = condition_of(mc, "Ready")
        assert still is not None and still["lastTransitionTime"] == cond["lastTransitionTime"]
    finally:
        fleet.rig.start_component("a", "kube-apiserver")
    restarted = time.monotonic()

    # Back: Ready, the automatic taints gone, the user's taint kept.
    def clean() -> dict[str, Any] | None:
        mc = member_ready(hub, "a")
        return (
            mc if mc is not None and set(_taints(mc)) == {(USER_TAINT["key"], USER_TAINT["effect"])} else None
        )

    mc = kube.wait_for(clean, timeout=WAIT, what="member a Ready again without automatic taints")
    seen_clean = time.monotonic() - restarted
    # Figures for docs/runtime.md (printed, never asserted: the machine may be busy). To the real
    # stderr: KopfRunner captures sys.stdout while the operator runs.
    print(
        f"\nAPI server killed -> NoSchedule seen {seen_no_schedule:.1f}s, NoExecute seen "
        f"{seen_no_execute:.1f}s (grace {GRACE}s); API server ready again -> Ready and untainted "
        f"seen {seen_clean:.1f}s",
        file=sys.__stderr__,
    )
    back = condition_of(mc, "Ready")
    assert back is not None and _time(back["lastTransitionTime"]) >= _time(no_execute["timeAdded"])

    def sample(metric: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(metric, {"cluster": "a", **labels}) or 0.0

    assert sample("flotilla_cluster_taints_added_total", key=UNREACHABLE, effect="NoSchedule") >= 1
    assert sample("flotilla_cluster_taints_added_total", key=UNREACHABLE, effect="NoExecute") >= 1
    assert sample("flotilla_cluster_probe_failures_total", reason="Unreachable") >= 3
    assert sample("flotilla_cluster_ready") == 1


def test_cordon_keeps_new_workloads_away_until_uncordon(
    operator: KopfRunner, hub: ClusterHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--kubeconfig", str(hub.kubeconfig)]
    assert cli.main(["cordon", "c", *flags]) == 0
    assert capsys.readouterr().out == "membercluster/c cordoned\n"
    assert (UNSCHEDULABLE, "NoSchedule") in _taints(_member(hub, "c"))
    assert cli.main(["get", "clusters", "-o", "json", *flags]) == 0
    assert "Ready (Cordoned)" in capsys.readouterr().out

    ns, name = _place_on(hub, ["b", "c"])
    rb = kube.wait_for(lambda: _placed(hub, ns, name), timeout=WAIT, what="placed while c is cordoned")
    assert [c["name"] for c in rb["spec"]["clusters"]] == ["b"]

    assert cli.main(["uncordon", "c", *flags]) == 0
    assert capsys.readouterr().out == "membercluster/c uncordoned\n"
    assert (UNSCHEDULABLE, "NoSchedule") not in _taints(_member(hub, "c"))
    ns, name = _place_on(hub, ["b", "c"])
    rb = kube.wait_for(lambda: _placed(hub, ns, name), timeout=WAIT, what="placed after uncordon")
    assert sorted(c["name"] for c in rb["spec"]["clusters"]) == ["b", "c"]
