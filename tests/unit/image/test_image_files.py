"""The operator image's files agree with each other and with what runs them.

The Dockerfile, tools/image/build.sh (the daemonless build), the chart's Deployment and
pyproject's console script must name the same entrypoint and user; the Dockerfile's bases stay
pinned by digest; nothing but the package reaches the build context. Reads files only (fast); the
image itself is built and run by `make image` / `make image-e2e` (docs/image.md).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"
BUILD_SH = ROOT / "tools" / "image" / "build.sh"
CHECK_SH = ROOT / "tools" / "image" / "check.sh"
HUB_CHECK = ROOT / "tools" / "image" / "hub_check.py"
CHART = ROOT / "charts" / "flotilla"
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
OPERATOR_UID = 65532


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(instrs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instrs:
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def final_stage(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return stages(dockerfile)[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def chart_command() -> list[str] | None:
    """The operator container's `command` in the chart's Deployment template (None: the image's)."""
    text = (CHART / "templates" / "deployment.yaml").read_text()
    found = re.search(r"^\s*command:\s*(\[.*\])\s*$", text, re.M)
    return [str(x) for x in yaml.safe_load(found.group(1))] if found else None


def test_every_base_is_pinned_by_digest(dockerfile: list[tuple[str, str]]) -> None:
    names: set[str] = set()
    bases: list[str] = []
    for word, args in dockerfile:
        if word != "FROM":
            continue
        parts = [p for p in args.split() if not p.startswith("--platform=")]
        image = parts[0]
        if len(parts) >= 3 and parts[1].upper() == "AS":
            names.add(parts[2])
        if image in names or image == "scratch":
            continue
        assert re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", image), f"base not pinned by digest: {image}"
        bases.append(image)
    assert bases, "no FROM"
    # One base for every stage: the venv built in one runs in another.
    assert len(set(bases)) == 1, bases


def test_base_python_matches_the_daemonless_build_and_the_package(
    dockerfile: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    image = next(args for word, args in dockerfile if word == "FROM").split()[-3]
    found = re.search(r"python:(\d+)\.(\d+)-slim-(\w+)@", image)
    assert found, image
    minor, suite = f"{found.group(1)}.{found.group(2)}", found.group(3)
    build = BUILD_SH.read_text()
    assert f"suite={suite}" in build
    assert f"python{minor}-minimal" in build, "tools/image/build.sh builds on another Python"
    required = re.fullmatch(r">=\s*(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert required and (int(found.group(1)), int(found.group(2))) >= (int(required[1]), int(required[2]))


def test_entrypoint_is_the_operator_script(
    dockerfile: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    final = final_stage(dockerfile)
    entrypoints = [exec_form(args) for word, args in final if word == "ENTRYPOINT"]
    assert entrypoints == [["flotilla-operator"]]
    assert pyproject["project"]["scripts"]["flotilla-operator"] == "flotilla.__main__:main"
    assert not [w for w, _ in final if w in ("CMD", "SHELL")], "no CMD or SHELL: nothing runs a shell"
    assert "--config.entrypoint flotilla-operator" in BUILD_SH.read_text()


def test_chart_command_runs_the_same_function(
    dockerfile: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    command = chart_command()
    script = pyproject["project"]["scripts"]["flotilla-operator"]
    if command is None or command == ["flotilla-operator"]:
        return  # the image's entrypoint itself
    # `python -m flotilla` runs flotilla/__main__.py's main(), the script's target, with the
    # venv's python: the image puts /opt/flotilla/bin first on PATH.
    assert command == ["python", "-m", "flotilla"], command
    assert script == "flotilla.__main__:main"
    main_py = (ROOT / "src" / "flotilla" / "__main__.py").read_text()
    assert 'if __name__ == "__main__":' in main_py and "main()" in main_py
    env = " ".join(args for word, args in final_stage(dockerfile) if word == "ENV")
    assert re.search(r"PATH=/opt/flotilla/bin:", env), env
    assert "PATH=/opt/flotilla/bin:" in BUILD_SH.read_text()


def test_runs_as_the_charts_user(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for word, args in final_stage(dockerfile) if word == "USER"]
    assert users == [f"{OPERATOR_UID}:{OPERATOR_UID}"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == OPERATOR_UID
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert f"--config.user {OPERATOR_UID}:{OPERATOR_UID}" in BUILD_SH.read_text()
    assert f"nonroot:x:{OPERATOR_UID}:{OPERATOR_UID}:" in BUILD_SH.read_text()


def test_runtime_gets_only_the_venv(dockerfile: list[tuple[str, str]]) -> None:
    """The runtime stage copies /opt/flotilla from the venv stage and nothing from the checkout,
    so the rig's Go binaries, tests and dev extras cannot reach it."""
    final = final_stage(dockerfile)
    copies = [args for word, args in final if word in ("COPY", "ADD")]
    assert copies == ["--from=venv /opt/flotilla /opt/flotilla"], copies
    text = DOCKERFILE.read_text()
    assert "[dev]" not in text and "rig-bin" not in text and "tests" not in text
    assert "--only-binary=:all:" in text and "--only-binary=:all:" in BUILD_SH.read_text()


def test_oci_labels(dockerfile: list[tuple[str, str]], pyproject: dict[str, Any]) -> None:
    labels = " ".join(args for word, args in final_stage(dockerfile) if word == "LABEL")
    keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", labels))
    needed = {"title", "description", "licenses", "version", "revision", "created", "source"}
    assert {f"org.opencontainers.image.{k}" for k in needed} <= keys, keys
    assert f'org.opencontainers.image.licenses="{pyproject["project"]["license"]}"' in labels
    build = BUILD_SH.read_text()
    for k in needed - {"source"}:  # source: the git remote, when there is one
        assert f"org.opencontainers.image.{k}=" in build, k


def test_build_context_is_the_package_only(
    dockerfile: list[tuple[str, str]], pyproject: dict[str, Any]
) -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: everything is excluded first"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources: list[str] = []
    for word, args in dockerfile:
        if word == "COPY" and not args.startswith("--from="):
            sources += args.split()[:-1]
    for src in sources:
        assert any(src == a or (a.endswith("*") and src.startswith(a[:-1])) for a in allowed), src
    assert pyproject["project"]["readme"] in allowed
    assert "src" in allowed


def test_workflow_builds_multi_arch_for_ghcr() -> None:
    wf = yaml.safe_load(WORKFLOW.read_text())
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    uses = [s.get("uses", "") for s in steps]
    for action in ("docker/setup-qemu-action", "docker/setup-buildx-action", "docker/build-push-action"):
        assert any(u.startswith(action + "@") for u in uses), action
    pushes = [
        s for s in steps if s.get("uses", "").startswith("docker/build-push-action") and "tags" in s["with"]
    ]
    platforms = {p.strip() for s in pushes for p in s["with"]["platforms"].split(",")}
    assert {"linux/amd64", "linux/arm64"} <= platforms
    assert all("type=gha" in s["with"]["cache-from"] for s in pushes)
    assert "ghcr.io/" in wf["env"]["IMAGE"]
    on = wf.get("on") or wf.get(True)  # PyYAML reads the key `on` as True
    assert "v*" in on["push"]["tags"]


def test_umoci_pin_matches_its_module() -> None:
    versions = dict(
        ln.split("=", 1)
        for ln in (ROOT / "tools" / "rig-bin" / "versions.env").read_text().splitlines()
        if "=" in ln and not ln.startswith("#")
    )
    go_mod = (ROOT / "tools" / "rig-bin" / "umoci" / "go.mod").read_text()
    assert f"github.com/opencontainers/umoci {versions['UMOCI_VERSION']}" in go_mod


@pytest.mark.parametrize("script", [BUILD_SH, CHECK_SH], ids=lambda p: p.name)
def test_scripts_parse(script: Path) -> None:
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_hub_check_parses() -> None:
    ast.parse(HUB_CHECK.read_text(), filename=str(HUB_CHECK))
