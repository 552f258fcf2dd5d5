from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flotilla.cli import default_fleet_path
from flotilla.rig import binaries
from flotilla.rig.fleet import FleetError, load_fleet, parse_fleet


def test_default_fleet_matches_the_documented_members() -> None:
    fleet = load_fleet(default_fleet_path())
    assert fleet.hub.controllers is False
    a, b, c = (fleet.member(n) for n in "abc")
    assert [(len(m.nodes()), m.node_pools[0].gpu.count) for m in (a, b, c) if m.node_pools[0].gpu] == [
        (5, 8),
        (12, 4),
        (16, 1),
    ]
    node = a.nodes()[0]
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert node["metadata"]["labels"]["nvidia.com/gpu.memory"] == "81559"
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {"members": [{"name": "a", "nodePools": [{"name": "x", "count": 0}]}]},
            "members[0].nodePools[0].count",
        ),
        (
            {
                "members": [
                    {
                        "name": "a",
                        "nodePools": [
                            {"name": "x", "count": 1, "gpu": {"count": -1, "product": "P", "memoryMiB": 1}}
                        ],
                    }
                ]
            },
            "members[0].nodePools[0].gpu.count",
        ),
        (
            {
                "members": [
                    {
                        "name": "a",
                        "nodePools": [{"name": "x", "count": 1, "gpu": {"count": 1, "memoryMiB": 1}}],
                    }
                ]
            },
            "members[0].nodePools[0].gpu.product",
        ),
        ({"members": [{"name": "Bad_Name"}]}, "members[0].name"),
        ({"members": [{"name": "a", "nodeCount": 3}]}, "members[0].nodeCount"),
        ({"hub": {"name": "a"}, "members": [{"name": "a"}]}, "unique"),
        ({"members": [{"name": "a", "port": 80}]}, "members[0].port"),
        ({"members": [{"name": "a", "trainingOperator": True}]}, "trainingOperator needs"),
    ],
)
def test_malformed_fleet_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(FleetError) as info:
        parse_fleet(data, "test.yaml")
    assert field in str(info.value)
    assert str(info.value).startswith("test.yaml: ")


def test_fleet_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="no such fleet file"):
        load_fleet(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("hub: [unclosed")
    with pytest.raises(FleetError, match="not valid YAML"):
        load_fleet(bad)
    bad.write_text("- a list")
    with pytest.raises(FleetError, match="expected a mapping"):
        load_fleet(bad)


def test_training_operator_is_an_optional_component() -> None:
    fleet = load_fleet(default_fleet_path())
    assert [m.name for m in fleet.members if m.training_operator] == ["a", "b"]
    assert fleet.components(("kwok",)) == ("kwok", "training-operator")
    plain = parse_fleet({"members": [{"name": "a", "thirdPartyCRDs": ["kubeflow.org_pytorchjobs.yaml"]}]})
    assert plain.components(("etcd", "kwok")) == ("etcd", "kwok")


def test_missing_binaries_are_counted_per_requested_component(tmp_path: Path) -> None:
    found = dataclasses.replace(binaries.locate(), training_operator=tmp_path / "nope" / "training-operator")
    assert tmp_path / "nope" / "training-operator" not in found.missing()
    assert found.missing(("training-operator",)) == [tmp_path / "nope" / "training-operator"]


def test_the_hub_with_controllers_fleet_would_run_pods_on_its_hub() -> None:
    fleet = load_fleet(default_fleet_path().parent / "hub-with-controllers.yaml")
    hub = fleet.hub
    assert hub.controllers and hub.scheduler and hub.training_operator
    nodes = hub.as_cluster().nodes()
    assert [n["status"]["allocatable"]["nvidia.com/gpu"] for n in nodes] == ["8", "8"]
    assert "training-operator" in fleet.components(("etcd",))


@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ({"scheduler": True}, "need controllers: true"),
        (
            {"controllers": True, "trainingOperator": True},
            "trainingOperator needs kubeflow.org_pytorchjobs.yaml",
        ),
    ],
)
def test_hub_agents_need_a_hub_with_controllers(hub: dict[str, object], message: str) -> None:
    with pytest.raises(FleetError, match=message):
        parse_fleet({"hub": hub})
