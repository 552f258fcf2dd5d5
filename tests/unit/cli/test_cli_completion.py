"""Shell completion: candidates from the parser, cluster names and contexts, cobra's protocol."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flotilla import cli
from flotilla.completion import DIRECTIVE_DEFAULT, DIRECTIVE_NO_FILES, complete, kubeconfig_contexts, render


def _complete(*words: str) -> tuple[list[str], int]:
    seen: list[argparse.Namespace] = []

    def clusters(args: argparse.Namespace) -> list[str]:
        seen.append(args)
        return ["a", "b", "gpu-east"]

    return complete(cli.build_parser(), list(words), clusters=clusters, contexts=lambda _a: ["hub", "member"])


def test_commands_and_subcommands() -> None:
    names, directive = _complete("")
    assert {"get", "describe", "cordon", "uncordon", "join", "unjoin", "quota", "completion"} <= set(names)
    assert directive == DIRECTIVE_NO_FILES
    assert _complete("un") == (["uncordon", "unjoin"], DIRECTIVE_NO_FILES)
    assert _complete("get", "") == (["clusters", "workloads"], DIRECTIVE_NO_FILES)  # not the aliases
    assert _complete("describe", "w") == (["workload"], DIRECTIVE_NO_FILES)


def test_flags_and_their_values() -> None:
    flags, _ = _complete("join", "x", "--cluster-")
    assert flags == [
        "--cluster-kubeconfig",
        "--cluster-context",
        "--cluster-namespace",
        "--cluster-server",
        "--cluster-provider",
        "--cluster-region",
        "--cluster-zone",
    ]
    assert _complete("get", "mc", "-o", "") == (["table", "wide", "json", "yaml"], DIRECTIVE_NO_FILES)
    assert _complete("get", "workloads", "--status", "p") == (["pending"], DIRECTIVE_NO_FILES)
    assert _complete("join", "x", "--cluster-kubeconfig", "") == ([], DIRECTIVE_DEFAULT)  # files
    assert _complete("get", "clusters", "--kubeconfig", "") == ([], DIRECTIVE_DEFAULT)
    assert _complete("join", "x", "--cluster-context", "m") == (["member"], DIRECTIVE_NO_FILES)
    assert _complete("completion", "") == ([], DIRECTIVE_NO_FILES)


def test_cluster_names_for_the_commands_that_take_one() -> None:
    assert _complete("cordon", "") == (["a", "b", "gpu-east"], DIRECTIVE_NO_FILES)
    assert _complete("unjoin", "--kubeconfig", "hub.yaml", "g") == (["gpu-east"], DIRECTIVE_NO_FILES)
    assert _complete("cordon", "a", "") == ([], DIRECTIVE_NO_FILES)  # one cluster only
    assert _complete("describe", "workload", "") == ([], DIRECTIVE_NO_FILES)
    assert _complete("move", "deployment/web", "--to", "g") == (["gpu-east"], DIRECTIVE_NO_FILES)


def test_contexts_come_from_the_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "prod", "context": {"cluster": "c", "user": "u"}},
                    {"name": "dev", "context": {"cluster": "c", "user": "u"}},
                ],
                "current-context": "prod",
            }
        )
    )
    lookup = kubeconfig_contexts(lambda args: str(args.kubeconfig or path))
    assert lookup(argparse.Namespace()) == ["dev", "prod"]
    assert lookup(argparse.Namespace(cluster_kubeconfig=str(path))) == ["dev", "prod"]
    assert lookup(argparse.Namespace(kubeconfig=str(tmp_path / "missing"))) == []


def test_protocol_and_main(capsys: pytest.CaptureFixture[str]) -> None:
    assert render(["a", "b"], 4) == "a\nb\n:4\n"
    assert cli.main(["__complete", "get", "c"]) == 0
    assert capsys.readouterr().out == "clusters\n:4\n"
    assert cli.main(["completion", "bash"]) == 0
    assert "complete -F _kubectl_flotilla kubectl-flotilla flotilla" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_completes(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("kubectl-flotilla")
    if not script.exists():
        pytest.skip("kubectl-flotilla is not installed next to the interpreter")
    program = f"""
source <("{script}" completion bash)
COMP_WORDS=("{script}" get ''); COMP_CWORD=2; _kubectl_flotilla; echo "${{COMPREPLY[*]}}"
COMP_WORDS=("{script}" jo); COMP_CWORD=1; _kubectl_flotilla; echo "${{COMPREPLY[*]}}"
"""
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.stdout.splitlines() == ["clusters workloads", "join"], result.stderr
