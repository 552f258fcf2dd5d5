"""The operator's profile setting: read from the environment, learned shapes recorded on each
decision's explanation, exported as metrics and shown by ``kubectl flotilla describe``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from test_runtime import NS, Fleet, deployment, policy

from flotilla.controllers.profile import (
    ENV_HALF_LIFE,
    ENV_INTERVAL,
    ENV_LEARN,
    ENV_PRIOR_WEIGHT,
    ENV_REQUANTIZE,
    default_scheduler,
    learning_from_env,
)
from flotilla.explain import profile_lines
from flotilla.metrics import PROFILE, set_fragmentation
from flotilla.scheduler.plugins import fragmentation
from flotilla.scheduler.plugins.fragmentation import LearningSettings

CHART = Path(__file__).resolve().parents[3] / "charts" / "flotilla"


def test_environment_defaults_and_overrides() -> None:
    assert learning_from_env({}) == LearningSettings()
    got = learning_from_env(
        {
            ENV_LEARN: "false",
            ENV_HALF_LIFE: "200",
            ENV_PRIOR_WEIGHT: "7.5",
            ENV_REQUANTIZE: "0.1",
            ENV_INTERVAL: "50",
        }
    )
    assert got == LearningSettings(learn=False, half_life=200, prior_weight=7.5, requantize=0.1, interval=50)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({ENV_LEARN: "maybe"}, ENV_LEARN),
        ({ENV_HALF_LIFE: "soon"}, ENV_HALF_LIFE),
        ({ENV_HALF_LIFE: "-3"}, ENV_HALF_LIFE),
        ({ENV_PRIOR_WEIGHT: "0"}, ENV_PRIOR_WEIGHT),
        ({ENV_REQUANTIZE: "2"}, ENV_REQUANTIZE),
        ({ENV_INTERVAL: "0"}, ENV_INTERVAL),
        ({ENV_INTERVAL: "2.5"}, ENV_INTERVAL),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        learning_from_env(env)


def test_chart_sets_every_variable_from_values_with_the_code_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["operator"]["scheduler"]["fragmentation"]
    deployment_text = (CHART / "templates" / "deployment.yaml").read_text()
    for env, key in (
        (ENV_LEARN, "learn"),
        (ENV_HALF_LIFE, "halfLife"),
        (ENV_PRIOR_WEIGHT, "priorWeight"),
        (ENV_REQUANTIZE, "requantize"),
        (ENV_INTERVAL, "interval"),
    ):
        value = f"{{{{ .Values.operator.scheduler.fragmentation.{key} | quote }}}}"
        assert f"name: {env}\n              value: {value}" in deployment_text
    rendered = {
        ENV_LEARN: str(values["learn"]).lower(),
        ENV_HALF_LIFE: str(values["halfLife"]),
        ENV_PRIOR_WEIGHT: str(values["priorWeight"]),
        ENV_REQUANTIZE: str(values["requantize"]),
        ENV_INTERVAL: str(values["interval"]),
    }
    assert learning_from_env(rendered) == LearningSettings()


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"profile": PROFILE, **labels})


async def test_decisions_record_the_learned_shapes_and_the_gauges_follow(fleet: Fleet) -> None:
    fleet.hub.apply(policy("p"), "test")
    for i in range(3):
        fleet.hub.apply(deployment(f"web{i}", 2, gpus=2), "test")
    learning = LearningSettings(prior_weight=1, requantize=0.01, interval=1)
    rt = fleet.runtime(scheduler=default_scheduler(learning))
    for obj in list(fleet.hub.objects.values()):
        if obj["kind"] == "Deployment":
            rt.on_template(None, obj)
    await rt.preload()
    await rt.start()
    await fleet.settle()
    assert fleet.replicas("web2") in ({"a": 2}, {"b": 2})
    bindings = [o for o in fleet.hub.objects.values() if o["kind"] == "ResourceBinding"]
    assert len(bindings) == 3
    last = max(
        bindings, key=lambda b: b["status"]["explanation"]["profile"][fragmentation.NAME]["observedPods"]
    )
    state = last["status"]["explanation"]["profile"][fragmentation.NAME]
    assert state["learn"] is True and state["halfLife"] == learning.half_life
    assert state["epoch"] >= 1
    top = state["classes"][0]
    assert (top["cpu"], top["gpus"], top["gpuMilli"]) == ("0m", 2, 0)  # the Deployments' pods
    assert top["weight"] > 0.5
    assert metric("flotilla_scheduler_fragmentation_observed_pods") == 6
    assert (
        metric("flotilla_scheduler_fragmentation_epoch")
        == rt.scheduling.scheduler.framework.plugins[fragmentation.NAME].epoch
    )  # type: ignore[attr-defined]
    assert metric("flotilla_scheduler_fragmentation_learning") == 1
    weight = metric("flotilla_scheduler_fragmentation_class_weight", shape="cpu=0m,gpus=2,gpuMilli=0")
    assert weight is not None and weight > 0.5
    # At most 8 classes (the prior's 7 and the Deployments'), so every one is exported.
    assert metric("flotilla_scheduler_fragmentation_class_weight", shape="cpu=64000m,gpus=8,gpuMilli=0")
    lines = profile_lines(last["status"]["explanation"])
    assert len(lines) == 1 and lines[0].startswith(
        "  GPUFragmentation: learned (halfLife 5000.0 pods, prior 1 pods)"
    )
    assert "cpu=0m gpus=2 gpuMilli=0" in lines[0]
    assert NS  # the fleet's namespace holds every object above


def test_profile_lines_say_when_learning_is_off() -> None:
    plugin = fragmentation.new(learning=LearningSettings(learn=False))
    lines = profile_lines({"profile": {fragmentation.NAME: plugin.describe(2)}})
    assert lines == [
        "  GPUFragmentation: prior (learning off); top shapes: "
        "35% cpu=8000m gpus=1 gpuMilli=0, 15% cpu=64000m gpus=8 gpuMilli=0"
    ]
    assert profile_lines({}) == []


def test_a_shape_that_leaves_the_top_classes_loses_its_series() -> None:
    def described(*shapes: tuple[int, float]) -> dict[str, object]:
        classes = [{"cpu": f"{cpu}m", "gpus": 1, "gpuMilli": 0, "weight": w} for cpu, w in shapes]
        return {"epoch": 1, "learn": True, "classes": classes}

    name = "flotilla_scheduler_fragmentation_class_weight"
    a, b = "cpu=1000m,gpus=1,gpuMilli=0", "cpu=2000m,gpus=1,gpuMilli=0"
    set_fragmentation(described((1000, 0.6), (2000, 0.4)), "shapes-test")
    assert REGISTRY.get_sample_value(name, {"shape": b, "profile": "shapes-test"}) == 0.4
    set_fragmentation(described((1000, 1.0)), "shapes-test")
    assert REGISTRY.get_sample_value(name, {"shape": a, "profile": "shapes-test"}) == 1.0
    assert REGISTRY.get_sample_value(name, {"shape": b, "profile": "shapes-test"}) is None
