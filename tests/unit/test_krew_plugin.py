"""The krew plugin: plugins/flotilla.yaml rendered by tools/krew/build.sh has every field krew
requires, points at the archive it built (right digest, the bin and files inside), and the
launcher in it runs the installed release or says what it needs."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "tools" / "krew" / "build.sh"
SEMVER = re.compile(r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def build(out: Path, version: str = "0.3.0") -> tuple[dict[str, Any], Path]:
    env = {**os.environ, "GITHUB_REPOSITORY": "example/flotilla"}
    result = subprocess.run(
        ["bash", str(BUILD), version, str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load((out / "flotilla.yaml").read_text())
    return manifest, out / f"kubectl-flotilla_v{version.removeprefix('v')}.tar.gz"


def test_the_rendered_manifest_has_what_krew_requires(tmp_path: Path) -> None:
    manifest, archive = build(tmp_path)
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == "flotilla" == (ROOT / "plugins" / "flotilla.yaml").stem
    spec = manifest["spec"]
    assert SEMVER.match(spec["version"]) and spec["version"] == "v0.3.0"
    assert spec["homepage"] == "https://github.com/example/flotilla"
    assert 0 < len(spec["shortDescription"]) <= 50
    assert spec["description"].strip() and spec["caveats"].strip()
    assert "@" not in yaml.safe_dump(manifest), "a template field was left unfilled"
    assert spec["platforms"]
    for platform in spec["platforms"]:
        selector = platform["selector"]
        assert selector.get("matchLabels") or selector.get("matchExpressions")
        assert platform["uri"] == (
            "https://github.com/example/flotilla/releases/download/v0.3.0/kubectl-flotilla_v0.3.0.tar.gz"
        )
        assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
        assert platform["bin"] in members and members[platform["bin"]].mode & 0o111
        for entry in platform["files"]:
            assert entry["from"] in members and entry["to"] == "."


def test_the_archive_is_reproducible(tmp_path: Path) -> None:
    _, first = build(tmp_path / "one")
    _, second = build(tmp_path / "two")
    assert first.read_bytes() == second.read_bytes()


def test_a_release_location_is_required(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_REPOSITORY"}
    result = subprocess.run(
        ["bash", str(BUILD), "0.3.0", str(tmp_path)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 2
    assert "GITHUB_REPOSITORY" in result.stderr


def launcher(tmp_path: Path) -> Path:
    _, archive = build(tmp_path / "dist")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "plugin", filter="data")
    return tmp_path / "plugin" / "kubectl-flotilla"


def test_the_launcher_runs_the_installed_release(tmp_path: Path) -> None:
    script = launcher(tmp_path)
    venv = tmp_path / "home" / "0.3.0"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "kubectl-flotilla"
    fake.write_text('#!/bin/sh\necho "flotilla 0.3.0 $*"\n')
    fake.chmod(0o755)
    (venv / ".complete").touch()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FLOTILLA_KREW_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [str(script), "get", "clusters"], capture_output=True, text=True, env=env, check=False
    )
    assert (result.returncode, result.stdout) == (0, "flotilla 0.3.0 get clusters\n"), result.stderr


def test_the_launcher_names_the_python_it_needs(tmp_path: Path) -> None:
    script = launcher(tmp_path)
    old = tmp_path / "python-old"
    old.write_text("#!/bin/sh\nexit 1\n")  # a python3 that fails the 3.11 check
    old.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "FLOTILLA_KREW_HOME": str(tmp_path / "home"),
        "FLOTILLA_PYTHON": str(old),
    }
    result = subprocess.run([str(script), "version"], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    assert result.stderr == "kubectl-flotilla: needs Python 3.11 or newer as python3 (or FLOTILLA_PYTHON)\n"
    assert not (tmp_path / "home" / "0.3.0").exists()
