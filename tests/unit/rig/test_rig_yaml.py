"""The YAML the rig writes (kubeconfigs, the kube-scheduler config) keeps names YAML could misread."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import Configuration
from kubernetes.config.kube_config import KubeConfigLoader

from flotilla import yamlout
from flotilla.rig.cluster import ClusterHandle, inline_kubeconfig, write_kubeconfig
from flotilla.rig.fleet import FleetError, load_fleet
from flotilla.rig.runner import scheduler_config

# DNS labels that YAML 1.1 readers take for booleans, null or numbers. PyYAML's safe_dump
# leaves y, n, 1e3 and 0o17 unquoted; Go's sigs.k8s.io/yaml (gopkg.in/yaml.v2) reads them as
# true, false, 1000 and 15.
TRICKY_NAMES = ["y", "n", "no", "on", "off", "yes", "true", "null", "0123", "1e3", "0o17", "0x1f"]


class _GoLikeLoader(yaml.SafeLoader):
    """SafeLoader plus the implicit types gopkg.in/yaml.v2 resolves and PyYAML does not."""

    bool_values = {**yaml.SafeLoader.bool_values, "y": True, "n": False}


_GoLikeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_GoLikeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)
_GoLikeLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^0o[0-7]+$"), list("0"))


def _go_like_load(text: str) -> Any:
    return yaml.load(text, Loader=_GoLikeLoader)  # a SafeLoader subclass


def _plain_scalars(text: str) -> list[str]:
    """Scalars written without quotes (a YAML reader decides their type from their text)."""
    return [e.value for e in yaml.parse(text) if isinstance(e, yaml.ScalarEvent) and e.style is None]


def test_go_like_loader_misreads_what_safe_dump_leaves_plain() -> None:
    """The hazard the rig avoids: safe_dump output a Go reader takes for a boolean or a number."""
    assert _go_like_load(yaml.safe_dump({"name": "y"})) == {"name": True}
    assert _go_like_load(yaml.safe_dump({"name": "1e3"})) == {"name": 1000.0}
    assert _go_like_load(yamlout.dump({"name": "y"})) == {"name": "y"}


@pytest.mark.parametrize("name", TRICKY_NAMES)
def test_write_kubeconfig_keeps_member_names(tmp_path: Path, name: str) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not parsed here\n")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, name, "https://127.0.0.1:6443", ca, "tok3n")
    text = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600
    assert _plain_scalars(text) == [], "every string must be quoted"

    for doc in (yaml.safe_load(text), _go_like_load(text)):
        assert [c["name"] for c in doc["clusters"]] == [name]
        assert [c["name"] for c in doc["contexts"]] == [name]
        assert [u["name"] for u in doc["users"]] == [f"{name}-admin"]
        assert doc["current-context"] == name
        assert doc["contexts"][0]["context"] == {"cluster": name, "user": f"{name}-admin"}

    loader = KubeConfigLoader(config_dict=yaml.safe_load(text), config_base_path=str(tmp_path))
    assert loader.current_context == {"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}
    assert [c["name"] for c in loader.list_contexts()] == [name]
    cfg = Configuration()
    loader.load_and_set(cfg)
    assert cfg.host == "https://127.0.0.1:6443"
    assert cfg.api_key == {"BearerToken": "Bearer tok3n"}
    assert cfg.ssl_ca_cert == str(ca)


@pytest.mark.parametrize("name", ["y", "no", "on", "null", "0123"])
def test_cluster_handle_and_inline_kubeconfig_use_the_quoted_file(tmp_path: Path, name: str) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, name, "https://127.0.0.1:7443", ca, "t")
    handle = ClusterHandle(name=name, role="member", server="https://127.0.0.1:7443", kubeconfig=path)
    api = handle.api_client()
    try:
        assert api.configuration.host == "https://127.0.0.1:7443"
    finally:
        api.close()

    inline = inline_kubeconfig(handle)
    assert _plain_scalars(inline) == []
    doc = _go_like_load(inline)
    assert doc["current-context"] == name
    assert doc["clusters"][0]["name"] == name
    assert "certificate-authority" not in doc["clusters"][0]["cluster"]
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"].startswith("LS0t")
    loader = KubeConfigLoader(config_dict=yaml.safe_load(inline))
    assert loader.current_context["context"]["cluster"] == name


@pytest.mark.parametrize(
    "kubeconfig",
    [
        "/work/.rig/no/kubeconfig",
        "/work/.rig/y/kubeconfig",
        '/tmp/odd "dir": #1\\x/kubeconfig',
        "0123",
    ],
)
def test_scheduler_config_is_yaml_with_the_kubeconfig_path(kubeconfig: str) -> None:
    text = scheduler_config(Path(kubeconfig))
    assert [v for v in _plain_scalars(text) if not v.isdigit() and v not in ("true", "false")] == []
    for doc in (yaml.safe_load(text), _go_like_load(text)):
        assert doc["clientConnection"] == {"kubeconfig": kubeconfig, "qps": 200, "burst": 400}
        assert doc["apiVersion"] == "kubescheduler.config.k8s.io/v1"
        assert doc["kind"] == "KubeSchedulerConfiguration"
        assert doc["leaderElection"] == {"leaderElect": False}
        (profile,) = doc["profiles"]
        assert profile["schedulerName"] == "default-scheduler"
        assert profile["plugins"]["score"]["disabled"] == [
            {"name": "PodTopologySpread"},
            {"name": "NodeResourcesBalancedAllocation"},
        ]
        (fit,) = profile["pluginConfig"]
        assert fit["name"] == "NodeResourcesFit"
        assert fit["args"]["scoringStrategy"] == {
            "type": "MostAllocated",
            "resources": [
                {"name": "nvidia.com/gpu", "weight": 10},
                {"name": "cpu", "weight": 1},
                {"name": "memory", "weight": 1},
            ],
        }


def test_yamlout_round_trips_and_never_folds() -> None:
    doc = {
        "names": TRICKY_NAMES,
        "count": 3,
        "ratio": 0.5,
        "on": True,
        "none": None,
        "long": "abc " * 200,
        "text": 'a "quoted"\tline\nnext: #x',
    }
    text = yamlout.dump(doc)
    assert yaml.safe_load(text) == doc
    assert _go_like_load(text) == doc
    assert len(text.splitlines()) == 1 + len(TRICKY_NAMES) + 6


def test_fleet_names_are_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "hub: {name: null}\n"
        "members:\n"
        "  - name: no\n"
        "    nodePools: [{name: on, count: 1, gpu: {count: 8, product: y, memoryMiB: 1}}]\n"
        "  - name: y\n"
        "  - name: 0123\n"
        "  - name: 1e3\n"
        "  - name: 'true'\n"
        '  - name: "off"\n'
    )
    fleet = load_fleet(path)
    assert fleet.hub.name == "null"
    assert [m.name for m in fleet.members] == ["no", "y", "0123", "1e3", "true", "off"]
    pool = fleet.member("no").node_pools[0]
    assert pool.name == "on"
    assert pool.gpu is not None and pool.gpu.count == 8
    assert fleet.member("no").nodes()[0]["metadata"]["name"] == "no-on-0"


def test_fleet_only_names_are_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("members:\n  - name: a\n    labels: {gpu: yes, rack: 0123}\n")
    with pytest.raises(FleetError) as err:
        load_fleet(path)
    message = str(err.value)
    assert "members[0].labels.gpu: Input should be a valid string (YAML read True: quote the value" in message
    assert "members[0].labels.rack: Input should be a valid string (YAML read 83: quote the value" in message
