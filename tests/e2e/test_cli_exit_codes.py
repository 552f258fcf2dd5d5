"""``kubectl flotilla`` against real API servers: one line on stderr and a distinct exit code for an
unreachable hub (3), rejected credentials or a forbidden request (4), a hub without the Flotilla
CRDs (5), an unknown object or unusable kubeconfig (1) and bad arguments (2)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from operator_support import GROUP_VERSION, install_flotilla_crds

from flotilla import kube
from flotilla.cli import EXIT_ERROR, EXIT_FORBIDDEN, EXIT_NO_CRDS, EXIT_UNREACHABLE, EXIT_USAGE
from flotilla.rig.cluster import ClusterHandle, write_kubeconfig

NOBODY_NS = "cli-exit-codes"


def kubectl_flotilla(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("kubectl-flotilla")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flotilla.cli"]
    env = {"PATH": "/usr/bin:/bin", "FLOTILLA_RIG_DIR": "/nonexistent", "HOME": "/nonexistent"}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, env=env)


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The error line, after checking the exit code, stdout empty, and no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("flotilla: error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("flotilla: error: ").rstrip("\n")


@pytest.fixture(scope="module")
def crds(hub: ClusterHandle) -> ClusterHandle:
    install_flotilla_crds(hub)
    return hub


@pytest.fixture(scope="module")
def nobody(crds: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kubeconfig for the hub with the token of a ServiceAccount that has no RBAC at all."""
    api = crds.api_client()
    kube.ensure_namespace(api, NOBODY_NS)
    kube.apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "nobody", "namespace": NOBODY_NS},
        },
    )
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600},
    }
    issued = kube.request(
        api,
        "POST",
        f"/api/v1/namespaces/{NOBODY_NS}/serviceaccounts/nobody/token",
        request,
        "application/json",
    )
    path = tmp_path_factory.mktemp("nobody") / "kubeconfig"
    assert crds.ca_file is not None
    write_kubeconfig(path, "hub", crds.server, crds.ca_file, issued["status"]["token"])
    yield path
    kube.delete(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NOBODY_NS}})


def test_unreachable_hub_exits_3(hub: ClusterHandle, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    path = tmp_path / "kubeconfig"
    assert hub.ca_file is not None
    write_kubeconfig(path, "hub", f"https://127.0.0.1:{port}", hub.ca_file, "t")
    for command in (["get", "clusters"], ["get", "workloads", "-A"], ["cordon", "a"], ["quota"]):
        line = one_line(kubectl_flotilla(*command, "--kubeconfig", str(path)), EXIT_UNREACHABLE)
        assert line.startswith(f"cannot reach the hub at https://127.0.0.1:{port}: "), line


def test_rejected_token_exits_4(crds: ClusterHandle, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    assert crds.ca_file is not None
    write_kubeconfig(path, "hub", crds.server, crds.ca_file, "not-a-token")
    line = one_line(kubectl_flotilla("get", "clusters", "--kubeconfig", str(path)), EXIT_FORBIDDEN)
    assert line.startswith(
        "the hub answered HTTP 401 Unauthorized (the kubeconfig's credentials were rejected)"
    )


def test_forbidden_exits_4(nobody: Path) -> None:
    line = one_line(kubectl_flotilla("get", "clusters", "--kubeconfig", str(nobody)), EXIT_FORBIDDEN)
    assert line.startswith("the hub answered HTTP 403 Forbidden: memberclusters.flotilla.dev is forbidden: ")
    assert "system:serviceaccount:cli-exit-codes:nobody" in line
    line = one_line(kubectl_flotilla("get", "workloads", "--kubeconfig", str(nobody)), EXIT_FORBIDDEN)
    assert "resourcebindings.flotilla.dev is forbidden" in line
    line = one_line(kubectl_flotilla("uncordon", "a", "--kubeconfig", str(nobody)), EXIT_FORBIDDEN)
    assert "forbidden" in line


def test_no_crds_exits_5(members: dict[str, ClusterHandle]) -> None:
    member = members["c"]  # a plain API server: no flotilla.dev CRDs
    with pytest.raises(LookupError):
        kube.resolve(member.api_client(), GROUP_VERSION, "MemberCluster")
    kubeconfig = ["--kubeconfig", str(member.kubeconfig)]
    line = one_line(kubectl_flotilla("get", "clusters", *kubeconfig), EXIT_NO_CRDS)
    assert line == (
        "the API server does not serve MemberCluster in flotilla.dev/v1alpha1 "
        "(are the Flotilla CRDs installed on the hub?)"
    )
    one_line(kubectl_flotilla("get", "workloads", "-A", *kubeconfig), EXIT_NO_CRDS)
    one_line(kubectl_flotilla("quota", *kubeconfig), EXIT_NO_CRDS)
    # join checks the hub before it touches the member: nothing is created on b
    b = members["b"]
    joined = kubectl_flotilla("join", "x", *kubeconfig, "--cluster-kubeconfig", str(b.kubeconfig))
    assert joined.returncode == EXIT_NO_CRDS and "CRDs installed on the hub" in joined.stderr
    assert kube.get(b.api_client(), "v1", "ServiceAccount", "flotilla-x", "flotilla-system") is None


def test_unknown_objects_exit_1(crds: ClusterHandle, tmp_path: Path) -> None:
    kubeconfig = ["--kubeconfig", str(crds.kubeconfig)]
    line = one_line(
        kubectl_flotilla("describe", "workload", "Deployment/nope", "-n", "default", *kubeconfig), 1
    )
    assert line == "workload 'Deployment/nope' not found in namespace 'default' (try -A)"
    assert (
        one_line(kubectl_flotilla("cordon", "nope", *kubeconfig), EXIT_ERROR)
        == "membercluster 'nope' not found"
    )
    line = one_line(kubectl_flotilla("unjoin", "nope", *kubeconfig), EXIT_ERROR)
    assert line == "membercluster 'nope' not found (nothing to unjoin)"
    missing = tmp_path / "member.kubeconfig"
    line = one_line(
        kubectl_flotilla("join", "x", *kubeconfig, "--cluster-kubeconfig", str(missing)), EXIT_ERROR
    )
    assert line == f"--cluster-kubeconfig {missing}: no such file"
    line = one_line(kubectl_flotilla("join", "x", *kubeconfig, "--cluster-context", "nope"), EXIT_ERROR)
    assert line.startswith(f"cannot use member kubeconfig {crds.kubeconfig} (context 'nope'): ")


def test_unreachable_member_exits_3(crds: ClusterHandle, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "member.kubeconfig"
    assert crds.ca_file is not None
    write_kubeconfig(path, "m", f"https://127.0.0.1:{port}", crds.ca_file, "t")
    result = kubectl_flotilla(
        "join", "x", "--kubeconfig", str(crds.kubeconfig), "--cluster-kubeconfig", str(path)
    )
    line = one_line(result, EXIT_UNREACHABLE)
    assert line.startswith(f"cannot reach member cluster https://127.0.0.1:{port}: Failed to establish"), line
    assert kube.get(crds.api_client(), GROUP_VERSION, "MemberCluster", "x") is None


def test_usage_errors_exit_2(crds: ClusterHandle) -> None:
    kubeconfig = ["--kubeconfig", str(crds.kubeconfig)]
    assert one_line(kubectl_flotilla("join", "x", *kubeconfig), EXIT_USAGE).startswith("join needs")
    assert "invalid cluster name" in one_line(
        kubectl_flotilla("join", "X", "--cluster-context", "c"), EXIT_USAGE
    )
    result = kubectl_flotilla("get", "clusters", "--output", "nonsense", *kubeconfig)
    assert result.returncode == EXIT_USAGE and "invalid choice" in result.stderr


def test_context_namespace_is_the_default(crds: ClusterHandle, tmp_path: Path) -> None:
    doc = yaml.safe_load(crds.kubeconfig.read_text())
    doc["contexts"][0]["context"]["namespace"] = "team-ctx"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    line = one_line(
        kubectl_flotilla("describe", "workload", "Job/none", "--kubeconfig", str(path)), EXIT_ERROR
    )
    assert line == "workload 'Job/none' not found in namespace 'team-ctx' (try -A)"
