"""``kubectl flotilla cordon|uncordon CLUSTER``: one taint in, one taint out, nothing else touched."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cluster_objects import member
from kubernetes.client import ApiException

from flotilla import cli, kube
from flotilla.cli import CliError, cluster_row, render_clusters, set_cordon
from flotilla.rig.cluster import write_kubeconfig

UNSCHEDULABLE = "cluster.flotilla.dev/unschedulable"
USER = {"key": "team.example.com/dedicated", "value": "research", "effect": "NoSchedule"}
AUTO = {"key": "cluster.flotilla.dev/not-ready", "effect": "NoSchedule", "timeAdded": "2026-01-01T00:00:00Z"}
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Hub:
    """MemberClusters with resourceVersions; a merge patch carrying a stale one gets 409."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {
            o["metadata"]["name"]: {**o, "metadata": {**o["metadata"], "resourceVersion": "1"}}
            for o in objects
        }
        self.patches: list[dict[str, Any]] = []
        self.before_patch: Any = None  # called once before the next patch (a concurrent writer)

    def get(self, _api: Any, api_version: str, kind: str, name: str, namespace: str | None = None) -> Any:
        assert kind == "MemberCluster"
        obj = self.objects.get(name)
        return copy.deepcopy(obj) if obj else None

    def patch(
        self, _api: Any, obj: dict[str, Any], body: dict[str, Any], subresource: str | None = None
    ) -> Any:
        if self.before_patch is not None:
            hook, self.before_patch = self.before_patch, None
            hook(self)
        current = self.objects[obj["metadata"]["name"]]
        if body["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.patches.append(body)
        current["spec"] = {**current["spec"], **body["spec"]}
        current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(current)

    def taints(self, name: str) -> list[dict[str, Any]]:
        return list(self.objects[name]["spec"].get("taints") or [])


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch) -> Hub:
    fake = Hub(member("a", taints=[USER]), member("b"))
    monkeypatch.setattr(kube, "get", fake.get)
    monkeypatch.setattr(kube, "patch", fake.patch)
    return fake


def test_cordon_adds_one_taint_and_keeps_the_others(hub: Hub) -> None:
    assert set_cordon(None, "a", True, NOW)
    assert hub.taints("a") == [
        USER,
        {"key": UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": "2026-03-01T12:00:00Z"},
    ]
    assert hub.patches[-1]["metadata"] == {"resourceVersion": "1"}  # written with a precondition
    assert not set_cordon(None, "a", True, NOW)  # already cordoned: no write
    assert len(hub.patches) == 1
    assert set_cordon(None, "a", False)
    assert hub.taints("a") == [USER]
    assert not set_cordon(None, "a", False)
    assert set_cordon(None, "b", True, NOW)  # a member without any taint yet
    assert [t["key"] for t in hub.taints("b")] == [UNSCHEDULABLE]


def test_a_concurrent_write_is_not_lost(hub: Hub) -> None:
    def operator_taints(h: Hub) -> None:  # the operator adds an automatic taint meanwhile
        h.objects["a"]["spec"]["taints"] = [USER, AUTO]
        h.objects["a"]["metadata"]["resourceVersion"] = "7"

    hub.before_patch = operator_taints
    assert set_cordon(None, "a", True, NOW)
    assert [t["key"] for t in hub.taints("a")] == [USER["key"], AUTO["key"], UNSCHEDULABLE]
    hub.before_patch = lambda h: h.objects["a"]["metadata"].update(resourceVersion="9")
    assert set_cordon(None, "a", False)
    assert hub.taints("a") == [USER, AUTO]  # uncordon leaves the automatic taint to the operator


def test_missing_cluster_is_one_line(hub: Hub) -> None:
    with pytest.raises(CliError, match=r"^membercluster 'zz' not found$"):
        set_cordon(None, "zz", True)


def test_commands(hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "hub", "https://127.0.0.1:7001", ca, "t")
    assert cli.main(["cordon", "a", "--kubeconfig", str(path)]) == 0
    assert cli.main(["cordon", "a", "--kubeconfig", str(path)]) == 0
    assert cli.main(["uncordon", "a", "--kubeconfig", str(path)]) == 0
    assert cli.main(["uncordon", "a", "--kubeconfig", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "membercluster/a cordoned",
        "membercluster/a already cordoned",
        "membercluster/a uncordoned",
        "membercluster/a already uncordoned",
    ]
    assert cli.main(["cordon", "nope", "--kubeconfig", str(path)]) == 1
    assert capsys.readouterr().err == "flotilla: error: membercluster 'nope' not found\n"


def test_get_clusters_shows_a_cordoned_member() -> None:
    cordoned = member("a", nodes={"totalNum": 5, "readyNum": 5, "cordonedNum": 0}, taints=[USER])
    assert cluster_row(cordoned)["status"] == "Ready"
    cordoned["spec"]["taints"].append({"key": UNSCHEDULABLE, "effect": "NoSchedule"})
    row = cluster_row(cordoned)
    assert (row["status"], row["cordoned"], row["cordonedNodes"]) == ("Ready (Cordoned)", True, 0)
    assert row["taints"] == ["team.example.com/dedicated=research:NoSchedule", f"{UNSCHEDULABLE}:NoSchedule"]
    text = render_clusters([cordoned], "table")
    assert "Ready (Cordoned)" in text and "40 (cordoned)" in text
