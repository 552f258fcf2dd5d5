"""Exit codes and one-line errors of the hub commands, and the kubeconfig context's namespace."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes.client import ApiException

from flotilla import cli, kube
from flotilla.cli import (
    EXIT_ERROR,
    EXIT_FORBIDDEN,
    EXIT_NO_CRDS,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    error_line,
    exit_code,
    on_cluster,
)

NOT_SERVED = LookupError("the API server does not serve MemberCluster in flotilla.dev/v1alpha1")


def _api_error(status: int, reason: str, message: str = "") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    if message:
        exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


def test_codes_are_distinct() -> None:
    codes = [cli.EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_FORBIDDEN, EXIT_NO_CRDS]
    assert codes == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CliError("x"), EXIT_ERROR),
        (CliError("x", EXIT_USAGE), EXIT_USAGE),
        (_api_error(401, "Unauthorized"), EXIT_FORBIDDEN),
        (_api_error(403, "Forbidden"), EXIT_FORBIDDEN),
        (_api_error(404, "Not Found"), EXIT_ERROR),
        (_api_error(409, "Conflict"), EXIT_ERROR),
        (_api_error(500, "Internal Server Error"), EXIT_ERROR),
        (ApiException(status=0, reason="SSL handshake failed"), EXIT_UNREACHABLE),
        (ConnectionRefusedError(111, "refused"), EXIT_UNREACHABLE),
        (ssl.SSLError("bad certificate"), EXIT_UNREACHABLE),
        (urllib3.exceptions.ReadTimeoutError(None, "/apis", "read timed out"), EXIT_UNREACHABLE),
        (NOT_SERVED, EXIT_NO_CRDS),
        (LookupError("the API server does not serve Deployment in apps/v1"), EXIT_ERROR),
        (KeyError("bug"), EXIT_ERROR),
    ],
)
def test_exit_code(exc: BaseException, code: int) -> None:
    assert exit_code(exc) == code


def test_lines_name_the_target() -> None:
    assert error_line(_api_error(403, "Forbidden", "nope"), "member cluster https://m:6443") == (
        "member cluster https://m:6443 answered HTTP 403 Forbidden: nope"
    )
    assert error_line(ApiException(status=0, reason="SSL: CERTIFICATE_VERIFY_FAILED")) == (
        "cannot talk to the hub: SSL: CERTIFICATE_VERIFY_FAILED"
    )
    assert error_line(NOT_SERVED, "member cluster m") == (
        f"{NOT_SERVED} (are the Flotilla CRDs installed on member cluster m?)"
    )
    assert error_line(LookupError("the API server does not serve X in example.com/v1")) == (
        "the API server does not serve X in example.com/v1 (the hub)"
    )
    long = _api_error(500, "Internal Server Error", "line one\nline two " + "x" * 400)
    line = error_line(long)
    assert line is not None and "\n" not in line and len(line) == 300 and line.endswith("...")


def test_on_cluster_turns_errors_into_cli_errors() -> None:
    def refuse() -> None:
        raise _api_error(401, "Unauthorized")

    with pytest.raises(CliError) as err:
        on_cluster("member cluster m", refuse)
    assert err.value.code == EXIT_FORBIDDEN
    assert (
        str(err.value)
        == "member cluster m answered HTTP 401 Unauthorized (the kubeconfig's credentials were rejected)"
    )

    def bug() -> None:
        raise TypeError("a bug keeps its traceback")

    with pytest.raises(TypeError):
        on_cluster("the hub", bug)
    assert on_cluster("the hub", lambda: 7) == 7


def _kubeconfig(tmp_path: Path, namespace: str | None = None) -> Path:
    context: dict[str, Any] = {"cluster": "hub", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "hub", "cluster": {"server": "https://127.0.0.1:7001"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "hub", "context": context},
                    {"name": "other", "context": {"cluster": "hub", "user": "u", "namespace": "team-b"}},
                ],
                "current-context": "hub",
            }
        )
    )
    return path


@pytest.fixture()
def listed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    calls: list[tuple[str, str | None]] = []

    def fake_list(
        _api: Any, _api_version: str, kind: str, namespace: str | None = None, *_: Any
    ) -> list[Any]:
        calls.append((kind, namespace))
        return []

    monkeypatch.setattr(kube, "list_objects", fake_list)
    return calls


def test_the_context_namespace_is_the_default(
    tmp_path: Path, listed: list[tuple[str, str | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_kubeconfig(tmp_path, "team-a"))
    assert cli.main(["get", "workloads", "--kubeconfig", path]) == 0
    assert cli.main(["get", "workloads", "--kubeconfig", path, "--context", "other"]) == 0
    assert cli.main(["get", "workloads", "--kubeconfig", path, "-n", "team-c"]) == 0
    assert cli.main(["get", "workloads", "--kubeconfig", path, "-A"]) == 0
    assert cli.main(["quota", "--kubeconfig", path]) == 0
    assert listed == [
        ("ResourceBinding", "team-a"),
        ("ResourceBinding", "team-b"),
        ("ResourceBinding", "team-c"),
        ("ResourceBinding", None),
        ("FederatedResourceQuota", "team-a"),
    ]


def test_without_a_context_namespace_it_is_default(
    tmp_path: Path, listed: list[tuple[str, str | None]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["describe", "workload", "Deployment/x", "--kubeconfig", str(_kubeconfig(tmp_path))]) == 1
    assert capsys.readouterr().err == (
        "flotilla: error: workload 'Deployment/x' not found in namespace 'default' (try -A)\n"
    )
    assert listed == [("ResourceBinding", "default")]


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (
            _api_error(403, "Forbidden", 'memberclusters.flotilla.dev is forbidden: User "x" cannot list'),
            EXIT_FORBIDDEN,
            "the hub answered HTTP 403 Forbidden: "
            'memberclusters.flotilla.dev is forbidden: User "x" cannot list',
        ),
        (
            _api_error(401, "Unauthorized"),
            EXIT_FORBIDDEN,
            "the hub answered HTTP 401 Unauthorized (the kubeconfig's credentials were rejected)",
        ),
        (NOT_SERVED, EXIT_NO_CRDS, f"{NOT_SERVED} (are the Flotilla CRDs installed on the hub?)"),
    ],
)
def test_main_exits_with_the_code(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: Exception,
    code: int,
    line: str,
) -> None:
    def fail(*_a: Any, **_k: Any) -> Any:
        raise exc

    monkeypatch.setattr(kube, "list_objects", fail)
    for command in (["get", "clusters"], ["get", "workloads", "-A"], ["quota"]):
        assert cli.main([*command, "--kubeconfig", str(_kubeconfig(tmp_path))]) == code
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"flotilla: error: {line}\n")


def test_a_bug_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: Any, **_k: Any) -> Any:
        raise TypeError("bug")

    monkeypatch.setattr(kube, "list_objects", bug)
    with pytest.raises(TypeError):
        cli.main(["get", "clusters", "--kubeconfig", str(_kubeconfig(tmp_path))])


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        cli.main(["get", "nothing"])
    assert err.value.code == EXIT_USAGE
