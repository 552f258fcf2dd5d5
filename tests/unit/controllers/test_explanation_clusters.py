"""The operator bounds each binding's explanation (FLOTILLA_EXPLANATION_CLUSTERS), and the
describe/explain lines say what was left out."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from flotilla.controllers.scheduling import EXPLANATION_CLUSTERS, explanation_clusters, explanation_dict
from flotilla.explain import cluster_lines
from flotilla.scheduler.core import Explanation
from flotilla.scheduler.framework import Code, Status


def outcome(clusters: int) -> SimpleNamespace:
    expl = Explanation("ns/w", "divided")
    for i in range(clusters):
        expl.statuses[f"c{i:03d}"] = Status(
            Code.UNSCHEDULABLE, ("cluster(s) had insufficient cpu",), "NodeResourcesFit"
        )
    expl.available["ok"] = {"main": 4}
    expl.selected = ["ok"]
    expl.replicas["ok"] = 2
    return SimpleNamespace(explanation=expl)


def test_default_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOTILLA_EXPLANATION_CLUSTERS", raising=False)
    assert explanation_clusters() == EXPLANATION_CLUSTERS == 20
    monkeypatch.setenv("FLOTILLA_EXPLANATION_CLUSTERS", "3")
    assert explanation_clusters() == 3
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("FLOTILLA_EXPLANATION_CLUSTERS", bad)
        assert explanation_clusters() == EXPLANATION_CLUSTERS


def test_operator_explanation_is_bounded_and_says_what_it_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOTILLA_EXPLANATION_CLUSTERS", "3")
    out = explanation_dict(outcome(40), {"GPUFragmentation": {"epoch": 1}})
    assert [c["cluster"] for c in out["clusters"]] == ["c000", "c001", "ok"]
    assert out["omitted"] == {"feasible": 0, "rejected": 38}
    assert out["rejections"] == [
        {"plugin": "NodeResourcesFit", "reason": "cluster(s) had insufficient cpu", "clusters": 40}
    ]
    assert out["profile"] == {"GPUFragmentation": {"epoch": 1}}
    lines = cluster_lines(out)
    assert len(lines) == 5
    assert "38 more rejected" in lines[3] and "40 by NodeResourcesFit" in lines[4]
    small = explanation_dict(outcome(2))
    assert len(small["clusters"]) == 3 and "omitted" not in small
    assert not any("more rejected" in line for line in cluster_lines(small))
