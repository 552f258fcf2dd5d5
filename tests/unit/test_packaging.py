"""Packaging: the PyPI name, the licence, one version from git tags, and the runtime kept apart from
the dev rig and the test tools."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import flotilla

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_the_distribution_is_not_called_flotilla_which_pypi_has() -> None:
    assert PROJECT["name"] == flotilla.DISTRIBUTION == "flotilla-scheduler"
    scripts = PROJECT["scripts"]
    assert scripts["kubectl-flotilla"] == "flotilla.cli:main"
    assert scripts["flotilla-operator"] == "flotilla.__main__:main"


def test_the_license_file_matches_the_declared_license() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_one_version_number_from_git_tags() -> None:
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    assert any(r.startswith("hatch-vcs") for r in PYPROJECT["build-system"]["requires"])
    assert PYPROJECT["tool"]["hatch"]["version"]["source"] == "vcs"
    # A tree without git metadata (a tarball, the Dockerfile's context) still builds.
    assert PYPROJECT["tool"]["hatch"]["version"]["fallback-version"]
    # The installed package reports what the build derived, not a number written in a file.
    from importlib.metadata import version

    assert flotilla.__version__ == version("flotilla-scheduler")


def test_runtime_dependencies_hold_no_dev_or_test_tools() -> None:
    runtime = {d.split(">")[0].split("<")[0].split("=")[0].strip().lower() for d in PROJECT["dependencies"]}
    dev = {d.split(">")[0].split("=")[0].strip().lower() for d in PROJECT["optional-dependencies"]["dev"]}
    assert runtime.isdisjoint(dev)
    assert not runtime & {"pytest", "hypothesis", "ruff", "mypy"}


def _third_party_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("flotilla", "__future__")}


def test_the_dev_rig_needs_no_dependency_beyond_the_runtime_ones() -> None:
    """The rig (flotilla dev up, flotilla demo) runs control-plane binaries built by
    tools/rig-bin, not Python packages: its imports are all runtime dependencies, so it needs no
    extra of its own, and nothing of it is needed to run the operator."""
    distribution_of = {"yaml": "pyyaml", "kubernetes": "kubernetes", "pydantic": "pydantic"}
    runtime = {d.split(">")[0].split("<")[0].strip().lower() for d in PROJECT["dependencies"]}
    for module in sorted((ROOT / "src" / "flotilla" / "rig").glob("*.py")):
        for name in _third_party_imports(module):
            assert distribution_of.get(name, name) in runtime, f"{module.name} imports {name}"


def test_the_operator_never_imports_the_rig() -> None:
    code = (
        "import sys, flotilla.operator, flotilla.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('flotilla.rig')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
