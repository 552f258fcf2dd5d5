"""``kubectl flotilla get clusters``: honest rendering, hub kubeconfig selection, one-line errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from cluster_objects import H100, member
from kubernetes.client import ApiException

from flotilla import cli
from flotilla.cli import CliError, cluster_cells, cluster_row, error_line, hub_kubeconfig, render_clusters
from flotilla.rig.cluster import write_kubeconfig

LIVE_NODES = {"totalNum": 5, "readyNum": 5, "cordonedNum": 0}


def table(text: str) -> dict[str, list[str]]:
    """A rendered table as {name: cells}, split on the header's column starts."""
    header, *lines = text.splitlines()
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2 : i] == "  ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    out: dict[str, list[str]] = {"": [header[a:b].strip() for a, b in bounds]}
    for line in lines:
        cells = [line[a:b].strip() for a, b in bounds]
        out[cells[0]] = cells
    return out


def test_a_live_member() -> None:
    row = cluster_row(member("a", nodes=LIVE_NODES))
    assert row == {
        "name": "a",
        "status": "Ready",
        "ready": "True",
        "reason": "Ready",
        "message": "the member API server is healthy and its inventory is synced",
        "stale": False,
        "cordoned": False,
        "gpusFree": 40,
        "gpusTotal": 40,
        "gpuModels": f"{H100}x40",
        "nodes": 5,
        "readyNodes": 5,
        "cordonedNodes": 0,
        "taints": [],
        "version": "v1.34.4",
    }
    rows = table(render_clusters([member("a", nodes=LIVE_NODES)], "table"))
    assert rows[""] == ["NAME", "STATUS", "GPUS FREE", "GPUS TOTAL", "GPU MODELS", "NODES"]
    assert rows["a"] == ["a", "Ready", "40", "40", f"{H100}x40", "5"]


def test_an_unreachable_member_shows_its_reason_and_stale_figures() -> None:
    mc = member(
        "b",
        ready="False",
        reason="Unreachable",
        message="cannot connect to the member API server:\n  connection refused",
        gpus=(12, 48),
        nodes={"totalNum": 12, "readyNum": 12, "cordonedNum": 0},
        taints=[
            {
                "key": "cluster.flotilla.dev/unreachable",
                "effect": "NoSchedule",
                "timeAdded": "2026-01-01T00:00:00Z",
            }
        ],
    )
    rows = table(render_clusters([mc], "wide"))
    assert rows[""][-3:] == ["VERSION", "TAINTS", "MESSAGE"]
    assert rows["b"] == [
        "b",
        "NotReady (Unreachable)",
        "12 (stale)",
        "48 (stale)",
        f"{H100}x48",
        "12 (stale)",
        "v1.34.4",
        "cluster.flotilla.dev/unreachable:NoSchedule",
        "cannot connect to the member API server: connection refused",
    ]
    (doc,) = json.loads(render_clusters([mc], "json"))
    assert doc["stale"] is True
    assert doc["reason"] == "Unreachable"
    assert doc["status"] == "NotReady (Unreachable)"
    assert doc["ready"] == "False"
    assert (doc["gpusFree"], doc["gpusTotal"], doc["nodes"]) == (12, 48, 12)  # numbers, flagged stale


def test_a_member_that_never_reported_shows_no_figures() -> None:
    never = member("no", ready="False", reason="SecretNotFound", message="gone", gpus=None, version=None)
    fresh = {"metadata": {"name": "y"}, "spec": {}}
    rows = table(render_clusters([never, fresh], "table"))
    assert rows["no"] == ["no", "NotReady (SecretNotFound)", "-", "-", "-", "-"]
    assert rows["y"] == ["y", "Unknown", "-", "-", "-", "-"]
    docs = json.loads(render_clusters([never, fresh], "json"))
    assert [(d["status"], d["stale"], d["gpusFree"], d["gpusTotal"], d["nodes"]) for d in docs] == [
        ("NotReady (SecretNotFound)", True, None, None, None),
        ("Unknown", True, None, None, None),
    ]
    unknown = cluster_row(member("u", ready="Unknown", reason="Connecting", gpus=None))
    assert (unknown["status"], unknown["stale"]) == ("Unknown (Connecting)", True)


def test_every_node_cordoned_says_cordoned() -> None:
    mc = member("c", gpus=(0, 0), nodes={"totalNum": 16, "readyNum": 16, "cordonedNum": 16})
    row = cluster_row(mc)
    assert (row["status"], row["cordoned"], row["stale"], row["cordonedNodes"]) == (
        "Ready (Cordoned)",
        True,
        False,
        16,
    )
    rows = table(render_clusters([mc], "table"))
    assert rows["c"] == ["c", "Ready (Cordoned)", "0 (cordoned)", "0 (cordoned)", "-", "16 (16 cordoned)"]


def test_every_node_cordoned_is_inferred_without_cordoned_num() -> None:
    """An operator (or CRD) without nodeSummary.cordonedNum: Ready nodes, none schedulable."""
    row = cluster_row(member("c", gpus=(0, 0), nodes={"totalNum": 16, "readyNum": 16}))
    assert (row["status"], row["cordoned"], row["cordonedNodes"]) == ("Ready (Cordoned)", True, 16)
    # A member that has GPUs free is not inferred to be cordoned; the count stays unknown.
    row = cluster_row(member("a", nodes={"totalNum": 5, "readyNum": 5}))
    assert (row["status"], row["cordoned"], row["cordonedNodes"]) == ("Ready", False, None)
    # Some Ready nodes cordoned, the others NotReady: nothing schedulable, not all cordoned.
    row = cluster_row(member("m", gpus=(0, 0), nodes={"totalNum": 4, "readyNum": 2}))
    assert (row["status"], row["cordoned"]) == ("Ready (NoSchedulableNodes)", False)


def test_partly_cordoned_and_not_ready_nodes() -> None:
    rows = table(
        render_clusters(
            [
                member("e", gpus=(8, 24), nodes={"totalNum": 5, "readyNum": 5, "cordonedNum": 2}),
                member("f", gpus=(0, 0), nodes={"totalNum": 3, "readyNum": 0, "cordonedNum": 0}),
                member("g", gpus=(0, 0), nodes={"totalNum": 0, "readyNum": 0, "cordonedNum": 0}),
            ],
            "table",
        )
    )
    assert rows["e"] == ["e", "Ready", "8", "24", f"{H100}x24", "5 (2 cordoned)"]
    assert rows["f"] == ["f", "Ready (NodesNotReady)", "0", "0", "-", "3"]
    assert rows["g"] == ["g", "Ready", "0", "0", "-", "0"]


def test_a_stale_member_does_not_claim_cordoned_nodes_live() -> None:
    mc = member(
        "s",
        ready="False",
        reason="Unreachable",
        gpus=(0, 0),
        nodes={"totalNum": 2, "readyNum": 2, "cordonedNum": 2},
    )
    cells = cluster_cells(cluster_row(mc))
    assert (cells["status"], cells["gpusFree"], cells["nodes"]) == (
        "NotReady (Unreachable)",
        "0 (stale)",
        "2 (stale)",
    )


def test_yaml_output_quotes_names() -> None:
    text = render_clusters([member("no", nodes=LIVE_NODES), member("0123", nodes=LIVE_NODES)], "yaml")
    docs = yaml.safe_load(text)
    assert [d["name"] for d in docs] == ["no", "0123"]
    assert '"name": "no"' in text


def test_empty_list_prints_the_header() -> None:
    assert render_clusters([], "table") == "NAME  STATUS  GPUS FREE  GPUS TOTAL  GPU MODELS  NODES\n"
    assert render_clusters([], "json") == "[]\n"


# -- which kubeconfig ------------------------------------------------------------------------------


def test_hub_kubeconfig_precedence(tmp_path: Path) -> None:
    flag, env_a, env_b, rig, home = (tmp_path / n for n in ("flag", "a", "b", "rig", "home"))
    for f in (flag, env_b, rig, home):
        f.write_text("{}")
    assert hub_kubeconfig(str(flag), {"KUBECONFIG": str(env_b)}, lambda: rig, home) == str(flag)
    both = f"{env_a}:{env_b}"  # a path list: kubectl merges the files that exist
    assert hub_kubeconfig(None, {"KUBECONFIG": both}, lambda: rig, home) == both
    assert hub_kubeconfig(None, {"KUBECONFIG": ""}, lambda: rig, home) == str(rig)
    assert hub_kubeconfig(None, {}, lambda: None, home) == str(home)


def test_hub_kubeconfig_errors_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(CliError, match=r"^--kubeconfig .*missing: no such file$"):
        hub_kubeconfig(str(missing), {}, lambda: None, missing)
    with pytest.raises(CliError, match=r"^KUBECONFIG=.*missing: no such file$"):
        hub_kubeconfig(None, {"KUBECONFIG": str(missing)}, lambda: None, missing)
    with pytest.raises(CliError, match="is gone; run 'flotilla dev down'"):
        hub_kubeconfig(None, {}, lambda: missing, missing)
    with pytest.raises(CliError, match=r"^no hub kubeconfig: pass --kubeconfig, set KUBECONFIG"):
        hub_kubeconfig(None, {}, lambda: None, missing)


def _two_context_kubeconfig(tmp_path: Path) -> Path:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    first, second = tmp_path / "first", tmp_path / "second"
    write_kubeconfig(first, "hub", "https://127.0.0.1:7001", ca, "t1")
    write_kubeconfig(second, "no", "https://127.0.0.1:7002", ca, "t2")
    merged = yaml.safe_load(first.read_text())
    other = yaml.safe_load(second.read_text())
    for key in ("clusters", "users", "contexts"):
        merged[key] += other[key]
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(merged))
    return path


def _args(**kw: Any) -> Any:
    return cli.build_parser().parse_args(["get", "clusters", *[f"--{k}={v}" for k, v in kw.items()]])


def test_hub_client_honours_kubeconfig_and_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _two_context_kubeconfig(tmp_path)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    assert cli._hub(_args(kubeconfig=path)).configuration.host == "https://127.0.0.1:7001"
    assert cli._hub(_args(kubeconfig=path, context="no")).configuration.host == "https://127.0.0.1:7002"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{path}")
    assert cli._hub(_args(context="no")).configuration.host == "https://127.0.0.1:7002"
    with pytest.raises(CliError, match=r"cannot use kubeconfig .* \(context 'nope'\): .*nope"):
        cli._hub(_args(context="nope"))


# -- errors ----------------------------------------------------------------------------------------


def test_error_lines() -> None:
    forbidden = ApiException(status=403, reason="Forbidden")
    forbidden.body = json.dumps(
        {"kind": "Status", "message": 'memberclusters.flotilla.dev is forbidden: User "x" cannot list'}
    )
    assert error_line(forbidden) == (
        'the hub answered HTTP 403 Forbidden: memberclusters.flotilla.dev is forbidden: User "x" cannot list'
    )
    assert error_line(ApiException(status=401, reason="Unauthorized")) == (
        "the hub answered HTTP 401 Unauthorized (the kubeconfig's credentials were rejected)"
    )
    pool = urllib3.HTTPSConnectionPool("127.0.0.1", 1)
    refused = urllib3.exceptions.NewConnectionError(
        pool, "HTTPSConnection(host='127.0.0.1', port=1): Failed to establish a new connection: refused"
    )
    assert error_line(urllib3.exceptions.MaxRetryError(pool, "/apis", refused)) == (
        "cannot reach the hub at https://127.0.0.1:1: Failed to establish a new connection: refused"
    )
    assert error_line(
        LookupError("the API server does not serve MemberCluster in flotilla.dev/v1alpha1")
    ) == (
        "the API server does not serve MemberCluster in flotilla.dev/v1alpha1"
        " (are the Flotilla CRDs installed on the hub?)"
    )
    assert error_line(CliError("plain")) == "plain"
    assert error_line(KeyError("bug")) is None
    assert error_line(TypeError("bug")) is None


def test_main_prints_one_line_for_a_missing_kubeconfig(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["get", "clusters", "--kubeconfig", str(tmp_path / "nope")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"flotilla: error: --kubeconfig {tmp_path / 'nope'}: no such file\n"


def test_main_prints_one_line_when_the_hub_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "hub", f"https://127.0.0.1:{port}", ca, "t")
    assert cli.main(["get", "clusters", "--kubeconfig", str(path)]) == cli.EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert err.startswith(f"flotilla: error: cannot reach the hub at https://127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def test_main_renders_what_the_hub_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flotilla import kube

    path = _two_context_kubeconfig(tmp_path)
    items = [
        member("a", nodes=LIVE_NODES),
        member("b", ready="False", reason="Unreachable", gpus=(3, 8), nodes=LIVE_NODES),
    ]
    seen: list[Any] = []

    def fake_list(api: Any, api_version: str, kind: str, *rest: Any, **kw: Any) -> list[dict[str, Any]]:
        seen.append((api.configuration.host, kind))
        return items

    monkeypatch.setattr(kube, "list_objects", fake_list)
    assert cli.main(["get", "clusters", "--kubeconfig", str(path), "--context", "no", "-o", "json"]) == 0
    assert seen == [("https://127.0.0.1:7002", "MemberCluster")]
    docs = json.loads(capsys.readouterr().out)
    assert [(d["name"], d["status"], d["stale"]) for d in docs] == [
        ("a", "Ready", False),
        ("b", "NotReady (Unreachable)", True),
    ]
