"""The Karmada peer's pure parts: pins in step, resource models Karmada accepts, client limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flotilla.rig import binaries, peer
from flotilla.rig.fleet import load_fleet
from flotilla.rig.runner import STOP_ORDER

REPO = Path(__file__).resolve().parents[3]


def test_karmada_pin_is_the_wrapper_module_version() -> None:
    version = binaries.versions()["KARMADA_VERSION"]
    go_mod = (REPO / "tools" / "rig-bin" / "karmada" / "go.mod").read_text()
    assert re.search(rf"^require github\.com/karmada-io/karmada {re.escape(version)}$", go_mod, re.M)
    assert (
        f"github.com/karmada-io/karmada {version} h1:"
        in (REPO / "tools" / "rig-bin" / "karmada" / "go.sum").read_text()
    )
    assert binaries.locate_karmada().root.name == f"karmada-{version}"


def test_make_binaries_builds_karmada() -> None:
    makefile = (REPO / "Makefile").read_text()
    line = next(
        line for line in makefile.splitlines() if "tools/rig-bin/build.sh" in line and "binaries" not in line
    )
    assert "karmada" in line.split()


def test_every_peer_process_is_stopped_before_the_api_server() -> None:
    for name in peer.PROCESSES:
        assert STOP_ORDER.index(name) < STOP_ORDER.index("kube-apiserver")


def _quantity(text: str) -> int:
    units = {"Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"(\d+)(Gi|)", text).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_gpu_resource_models_pass_karmadas_validation_rules() -> None:
    """pkg/apis/cluster/validation ValidateClusterResourceModels: distinct grades, the same resources in
    every grade, each range non-empty, the first starting at 0, contiguous, the last ending at MaxInt64."""
    models = peer.gpu_resource_models()
    assert [m["grade"] for m in models] == sorted({m["grade"] for m in models})
    names = [r["name"] for r in models[0]["ranges"]]
    assert "nvidia.com/gpu" in names
    for i, model in enumerate(models):
        assert [r["name"] for r in model["ranges"]] == names
        for j, rng in enumerate(model["ranges"]):
            assert _quantity(rng["max"]) > _quantity(rng["min"])
            if i == 0:
                assert rng["min"] == "0"
            else:
                assert rng["min"] == models[i - 1]["ranges"][j]["max"]
    assert all(r["max"] == str(2**63 - 1) for r in models[-1]["ranges"])


def test_client_limits_are_karmadas_defaults_unless_tuned(tmp_path: Path) -> None:
    shipped = peer.KarmadaPeer(workdir=tmp_path, members={})
    assert shipped._qps_args(cluster=True) == []
    tuned = peer.KarmadaPeer(workdir=tmp_path, members={}, client_qps=400)
    assert tuned._qps_args(cluster=False) == ["--kube-api-qps=400", "--kube-api-burst=600"]
    assert tuned._qps_args(cluster=True)[2:] == ["--cluster-api-qps=400", "--cluster-api-burst=600"]


@pytest.mark.parametrize("name", ["fragmented-fleet.yaml"])
def test_benchmark_fleet_loads(name: str) -> None:
    fleet = load_fleet(REPO / "benchmarks" / "peer" / name)
    assert {m.name for m in fleet.members} == {"scattered", "whole"}
    assert all(m.training_operator for m in fleet.members)
