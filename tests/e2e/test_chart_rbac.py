"""The operator under the chart's own ServiceAccount and RBAC, on a read-only root: it still works.

The chart is rendered with helm (release ``flotilla`` in ``flotilla-system``, default values) and
its ServiceAccount, ClusterRoles, Roles, bindings and (empty) webhook configurations are applied
to the rig's hub. A token for that ServiceAccount is minted with the TokenRequest API and put,
with the hub's CA inline, in the kubeconfig the operator uses. The operator runs as the chart runs
it (``python -m flotilla``, the rendered Deployment's arguments and environment) in a mount
namespace where every mount is read-only, with all capabilities dropped, and one tmpfs as TMPDIR:
the only writable path (a probe in the same sandbox shows it). Then: members registered the way
``kubectl flotilla join`` writes them become Ready, a workload is placed on a member with its
ConfigMap (its Secret stays behind: the chart does not let the operator read Secrets outside its
namespace, and a Warning says so), an over-quota apply is refused by the webhook it registered,
the Lease is held, and the operator's log has no Forbidden in it. Local rig only: the sandbox
needs root and mount namespaces on this machine.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BACKEND
from kubernetes.client import ApiException
from operator_support import (
    GROUP_VERSION,
    WAIT,
    binding,
    condition_of,
    gpu_deployment,
    install_flotilla_crds,
    member_ready,
    register_member,
)

from flotilla import kube
from flotilla.rig.binaries import helm_path, repo_root
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.runner import free_port

pytestmark = pytest.mark.skipif(
    BACKEND == "kind" or os.geteuid() != 0, reason="runs the operator in a mount namespace: local rig, root"
)

RELEASE, NS = "flotilla", "flotilla-system"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")

# Every mount read-only (this mount namespace only), a tmpfs on $1 as the one writable path, all
# capabilities dropped (so nothing can be remounted writable), then the command.
SANDBOX = r"""
set -eu
tmpdir=$1; shift
mount --make-rprivate /
awk '{print $2}' /proc/self/mounts | sort -u | while read -r m; do
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o size=64m,mode=0700,nosuid,nodev tmpfs "$tmpdir"
exec setpriv --inh-caps=-all --bounding-set=-all --no-new-privs "$@"
"""
PROBE = """
import os, sys, tempfile
places = ["/", "/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), os.getcwd(), sys.prefix,
          os.path.dirname(os.environ["KUBECONFIG"]), tempfile.gettempdir()]
for place in places:
    try:
        with tempfile.NamedTemporaryFile(dir=place):
            print("writable", place)
    except OSError:
        print("read-only", place)
"""


def sandboxed(tmpdir: Path, *command: str) -> list[str]:
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "bash",
        "-c",
        SANDBOX,
        "sandbox",
        str(tmpdir),
        *command,
    ]


def render() -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            str(helm_path()),
            "template",
            RELEASE,
            str(repo_root() / "charts" / "flotilla"),
            "--namespace",
            NS,
            "--kube-version",
            "1.34.4",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@dataclass
class ChartOperator:
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    docs: list[dict[str, Any]]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def service_account_kubeconfig(hub: ClusterHandle, directory: Path, account: str) -> Path:
    issued = kube.request(
        hub.api_client(),
        "POST",
        f"/api/v1/namespaces/{NS}/serviceaccounts/{account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
        "application/json",
    )
    assert hub.ca_file is not None
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "hub",
                "cluster": {
                    "server": hub.server,
                    # Inline, as in-cluster CA data often is: the client writes it to a temporary file.
                    "certificate-authority-data": base64.b64encode(hub.ca_file.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": account, "user": {"token": issued["status"]["token"]}}],
        "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": account}}],
        "current-context": "hub",
    }
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def operator_env(
    deployment: dict[str, Any], kubeconfig: Path, tmpdir: Path
) -> tuple[dict[str, str], list[str]]:
    """The rendered Deployment's environment and arguments, with what differs off-cluster: the hub
    through the kubeconfig, the webhook called on 127.0.0.1, probes and metrics on free ports."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: str(e["value"]) for e in container["env"] if "value" in e}
    port = free_port()
    env |= {
        "POD_NAME": f"flotilla-rbac-{uuid.uuid4().hex[:5]}",
        "KUBECONFIG": str(kubeconfig),
        "TMPDIR": str(tmpdir),
        "HOME": "/nonexistent",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "FLOTILLA_METRICS_PORT": "0",
        "FLOTILLA_WEBHOOK_ADDR": "127.0.0.1",
        "FLOTILLA_WEBHOOK_PORT": str(port),
        "FLOTILLA_WEBHOOK_URL": f"https://127.0.0.1:{port}/validate",
    }
    args = [a.replace("0.0.0.0:8081", f"127.0.0.1:{free_port()}") for a in container["args"]]
    assert container["command"] == ["python", "-m", "flotilla"]
    return env, [sys.executable, "-m", "flotilla", *args]


@pytest.fixture(scope="module")
def chart_operator(
    hub: ClusterHandle, members: dict[str, ClusterHandle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChartOperator]:
    api = hub.api_client()
    install_flotilla_crds(hub)
    kube.ensure_namespace(api, NS)
    docs = render()
    applied = [d for d in docs if d["kind"] in RBAC_KINDS + WEBHOOK_KINDS]
    for doc in applied:
        kube.apply(api, doc, field_manager="helm")
    for member in members.values():
        register_member(hub, member)  # what kubectl flotilla join writes on the hub
    (account,) = [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    work = tmp_path_factory.mktemp("chart-rbac")
    work.chmod(0o755)
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    kubeconfig = service_account_kubeconfig(hub, work / "config", account)
    env, command = operator_env(deployment, kubeconfig, tmpdir)
    log = work / "operator.log"
    with log.open("wb") as fh:
        process = subprocess.Popen(
            sandboxed(tmpdir, *command),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd="/",
            start_new_session=True,
        )
    operator = ChartOperator(process, log, env, docs)
    try:
        yield operator
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for doc in reversed(applied):
            kube.delete(api, doc)
        kube.delete(
            api,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "flotilla-operator", "namespace": NS},
            },
        )


def test_only_the_temporary_directory_is_writable(chart_operator: ChartOperator, tmp_path: Path) -> None:
    env = chart_operator.env
    result = subprocess.run(
        sandboxed(Path(env["TMPDIR"]), sys.executable, "-c", PROBE),
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"writable {env['TMPDIR']}", lines
    assert all(line.startswith("read-only ") for line in lines[:-1]), lines


def test_under_the_charts_service_account_members_register_and_work_is_placed(
    chart_operator: ChartOperator, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    for name in members:
        kube.wait_for(partial(member_ready, hub, name), timeout=WAIT, what=f"member {name} Ready")
    assert chart_operator.process.poll() is None, chart_operator.output()[-3000:]

    ns = f"rbac-{uuid.uuid4().hex[:5]}"
    kube.ensure_namespace(api, ns)
    kube.apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"MODE": "serve"},
        },
    )
    kube.apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": ns},
            "stringData": {"TOKEN": "t"},
        },
    )
    kube.apply(
        api,
        {
            "apiVersion": GROUP_VERSION,
            "kind": "PropagationPolicy",
            "metadata": {"name": "to-b", "namespace": ns},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                "placement": {"clusterAffinity": {"clusterNames": ["b"]}},
            },
        },
    )
    web = gpu_deployment(ns, "web", replicas=1, gpus=1)
    web["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "settings"}},
        {"secretRef": {"name": "token"}},
    ]
    kube.apply(api, web)

    member = members["b"].api_client()
    kube.wait_for(lambda: kube.get(member, "apps/v1", "Deployment", "web", ns), timeout=WAIT, what="web on b")

    def scheduled() -> dict[str, Any] | None:
        cond = condition_of(binding(hub, ns, "web-deployment"), "Scheduled")
        return cond if cond and cond["status"] == "True" else None

    assert kube.wait_for(scheduled, timeout=WAIT, what="Scheduled=True")["message"].startswith(
        "scheduled to b"
    )
    assert kube.get(member, "v1", "ConfigMap", "settings", ns) is not None
    assert kube.get(member, "v1", "Secret", "token", ns) is None
    events = kube.wait_for(
        lambda: [
            e
            for e in kube.list_objects(api, "v1", "Event", ns)
            if e.get("reason") == "DependencyNotPropagated"
        ],
        timeout=WAIT,
        what="the DependencyNotPropagated Warning",
    )
    assert events[0]["message"].startswith(f"Secret {ns}/token is not propagated")

    # The quota webhook it registered (its certificate Secret and configuration, through the Roles).
    kube.apply(
        api,
        {
            "apiVersion": GROUP_VERSION,
            "kind": "FederatedResourceQuota",
            "metadata": {"name": "gpus", "namespace": ns},
            "spec": {"overall": {"nvidia.com/gpu": "2"}},
        },
    )

    def refused() -> str | None:
        try:
            kube.apply(api, gpu_deployment(ns, "big", replicas=4, gpus=1), dry_run=True)
        except ApiException as exc:
            return str(exc.body) if exc.status == 403 else None
        return None

    message = kube.wait_for(refused, timeout=WAIT, what="the over-quota apply refused")
    assert "FederatedResourceQuota" in message and "gpus" in message

    lease = kube.get(api, "coordination.k8s.io/v1", "Lease", "flotilla-operator", NS) or {}
    assert lease["spec"]["holderIdentity"] == chart_operator.env["POD_NAME"]
    output = chart_operator.output()
    assert "Forbidden" not in output and " 403" not in output, output[-4000:]
    assert chart_operator.process.poll() is None


def test_the_chart_reads_no_secret_outside_its_namespace_unless_asked() -> None:
    docs = render()
    for doc in docs:
        if doc["kind"] == "ClusterRole":
            for rule in doc["rules"]:
                assert "secrets" not in rule["resources"] and "*" not in rule["resources"], (
                    doc["metadata"],
                    rule,
                )
                assert "*" not in rule["verbs"], rule
        if doc["kind"] == "Role" and any("secrets" in r["resources"] for r in doc["rules"]):
            assert doc["metadata"]["namespace"] == NS
