"""``kubectl flotilla move WORKLOAD --to CLUSTER``: a request in the API, one-line errors, exit codes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cluster_objects import member

from flotilla import cli, kube
from flotilla.controllers.eviction import MOVE_ANNOTATION
from flotilla.rig.cluster import write_kubeconfig


def binding(name: str, clusters: list[str], ns: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "ResourceBinding",
        "metadata": {"name": f"{name}-deployment", "namespace": ns, "annotations": {}},
        "spec": {
            "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "namespace": ns},
            "clusters": [{"name": c} for c in clusters],
        },
    }


class Hub:
    """MemberClusters a and b, two bindings, and an operator stand-in that answers moves."""

    def __init__(self) -> None:
        self.members = {"a": member("a"), "b": member("b")}
        self.bindings = {"web-deployment": binding("web", ["a"]), "big-deployment": binding("big", ["a"])}
        self.events: list[dict[str, Any]] = []

    def get(self, _api: Any, _av: str, kind: str, name: str, namespace: str | None = None) -> Any:
        store = self.members if kind == "MemberCluster" else self.bindings
        obj = store.get(name)
        if obj is not None and kind == "ResourceBinding":
            self.operate(obj)
        return copy.deepcopy(obj) if obj else None

    def list_objects(self, _api: Any, _av: str, kind: str, namespace: str | None = None) -> Any:
        if kind == "Event":
            return copy.deepcopy(self.events)
        return [copy.deepcopy(b) for b in self.bindings.values()]

    def patch(self, _api: Any, obj: dict[str, Any], body: dict[str, Any], *_a: Any) -> Any:
        stored = self.bindings[obj["metadata"]["name"]]
        stored["metadata"]["annotations"].update(body["metadata"]["annotations"])
        return copy.deepcopy(stored)

    def operate(self, rb: dict[str, Any]) -> None:
        """What the failover controller does: web fits on b, big does not."""
        to = rb["metadata"]["annotations"].pop(MOVE_ANNOTATION, None)
        if to is None:
            return
        if rb["spec"]["resource"]["name"] == "web":
            rb["spec"]["clusters"] = [{"name": to}]
        else:
            message = f"cannot move to {to}: the scheduler found no room there: 0/2 clusters fit"
            self.events.append(
                {"reason": "MoveFailed", "involvedObject": {"name": "big"}, "message": message}
            )


@pytest.fixture()
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Hub, str]:
    fake = Hub()
    monkeypatch.setattr(kube, "get", fake.get)
    monkeypatch.setattr(kube, "patch", fake.patch)
    monkeypatch.setattr(kube, "list_objects", fake.list_objects)
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "hub", "https://127.0.0.1:7001", ca, "t")
    return fake, str(path)


def test_move_sets_the_request_and_reports(hub: tuple[Hub, str], capsys: pytest.CaptureFixture[str]) -> None:
    fake, path = hub
    assert cli.main(["move", "Deployment/web", "--to", "b", "-n", "ml", "--kubeconfig", path]) == 0
    assert fake.bindings["web-deployment"]["metadata"]["annotations"] == {MOVE_ANNOTATION: "b"}
    assert capsys.readouterr().out == "ml/Deployment/web: move to b requested\n"
    args = ["move", "web-deployment", "--to", "b", "-n", "ml", "--wait", "--kubeconfig", path]
    assert cli.main(args) == 0
    assert capsys.readouterr().out == "ml/Deployment/web moved to b\n"
    assert cli.main(args) == 0
    assert capsys.readouterr().out == "ml/Deployment/web is already on b\n"


def test_move_errors_are_one_line(hub: tuple[Hub, str], capsys: pytest.CaptureFixture[str]) -> None:
    _fake, path = hub
    assert cli.main(["move", "deployment/big", "--to", "b", "-n", "ml", "--wait", "--kubeconfig", path]) == 1
    assert capsys.readouterr().err == (
        "flotilla: error: ml/Deployment/big was not moved: cannot move to b: the scheduler found no"
        " room there: 0/2 clusters fit\n"
    )
    assert cli.main(["move", "deployment/web", "--to", "zz", "-n", "ml", "--kubeconfig", path]) == 1
    assert capsys.readouterr().err == "flotilla: error: membercluster 'zz' not found\n"
    assert cli.main(["move", "deployment/nope", "--to", "b", "-n", "ml", "--kubeconfig", path]) == 1
    assert capsys.readouterr().err == (
        "flotilla: error: workload 'deployment/nope' not found in namespace 'ml' (try -A)\n"
    )
    with pytest.raises(SystemExit) as exc:
        cli.main(["move", "deployment/web", "-n", "ml", "--kubeconfig", path])  # no --to
    assert exc.value.code == 2
