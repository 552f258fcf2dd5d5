"""``kubectl flotilla describe workload`` prints what GPUFragmentation had learned when it decided."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import cli
from flotilla.scheduler import Component, Placement, Workload
from flotilla.scheduler.plugins import fragmentation
from flotilla.scheduler.plugins.fragmentation import LearningSettings


def test_describe_prints_the_learned_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = fragmentation.new(learning=LearningSettings(interval=1, prior_weight=1, requantize=0.0))
    for i in range(20):
        plugin.observe(
            Workload(
                f"ns/w{i}",
                (Component("main", 2, {"cpu": 3000, "flotilla.dev/gpu-milli": 500}),),
                Placement.from_dict({}),
            )
        )
    explanation = {"mode": "divided", "clusters": [], "profile": {fragmentation.NAME: plugin.describe(5)}}
    row: dict[str, Any] = {
        "namespace": "default",
        "workload": "Deployment/web",
        "binding": "web-deployment",
        "clusters": "a:2",
        "scheduled": "True",
        "applied": "True",
        "message": "scheduled to a:2",
        "_body": {"status": {"explanation": explanation}},
    }
    monkeypatch.setattr(cli, "_binding_rows", lambda args: [row])
    assert cli.main(["describe", "workload", "Deployment/web"]) == 0
    out = capsys.readouterr().out
    assert "Profile:\n  GPUFragmentation: learned (halfLife 5000.0 pods, prior 1 pods), epoch " in out
    assert "top shapes: 98% cpu=3000m gpus=0 gpuMilli=500" in out  # 40 pods against a 1-pod prior
