"""``kubectl flotilla join`` on the rig: the operator runs a member on the joined ServiceAccount alone.

Member ``c`` is joined as ``joined-c`` with its admin kubeconfig. The hub then holds only the
ServiceAccount's token for it, so ``joined-c`` turning Ready proves the member ClusterRole is
enough for the inventory, and a Deployment (with a ConfigMap), a static quota share and their
removal prove it is enough for propagation. ``unjoin`` removes everything join made.

The ``members`` fixture is shared with modules that register ``c`` under its own name: two
MemberClusters on one API server would each see the other's copies as strays, so a MemberCluster
``c`` is set aside for this module and registered again afterwards.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, ApiException
from operator_support import (
    GROUP_VERSION,
    SYSTEM_NS,
    binding,
    condition_of,
    install_flotilla_crds,
    member_ready,
    register_member,
    running_operator,
)

from flotilla import kube
from flotilla.inventory.client import load_kubeconfig
from flotilla.rig.cluster import ClusterHandle

WAIT = 150.0
NAME = "joined-c"
SA = f"flotilla-{NAME}"
ROLE = f"flotilla:member:{NAME}"


def kubectl_flotilla(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed plugin (``kubectl flotilla ...``), as a user runs it."""
    script = Path(sys.executable).with_name("kubectl-flotilla")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flotilla.cli"]
    env = {"PATH": "/usr/bin:/bin", "FLOTILLA_RIG_DIR": "/nonexistent", "HOME": "/nonexistent"}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture(scope="module")
def member_c_aside(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> Iterator[ClusterHandle]:
    install_flotilla_crds(hub)
    api = hub.api_client()
    current = kube.get(api, GROUP_VERSION, "MemberCluster", "c")
    had_c = current is not None
    if current is not None:
        # No operator runs between modules to honour its finalizer: drop it, then delete.
        kube.patch(api, current, {"metadata": {"finalizers": None}})
        kube.delete(
            api, {"apiVersion": GROUP_VERSION, "kind": "MemberCluster", "metadata": {"name": "c"}}, wait=30
        )
    try:
        yield members["c"]
    finally:
        if had_c:
            register_member(hub, members["c"])


def _hub_kubeconfig_text(hub: ClusterHandle) -> str:
    secret = kube.get(hub.api_client(), "v1", "Secret", f"{NAME}-kubeconfig", SYSTEM_NS)
    assert secret is not None
    return base64.b64decode(secret["data"]["kubeconfig"]).decode()


def _jwt_subject(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def _deployment(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "vllm/vllm-openai:v0.6.3",
                            "resources": {
                                "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"},
                                "limits": {"nvidia.com/gpu": "1"},
                            },
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/model"}],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
                },
            },
        },
    }


def test_join_place_and_unjoin(
    hub: ClusterHandle, members: dict[str, ClusterHandle], member_c_aside: ClusterHandle
) -> None:
    member = member_c_aside
    member_api = member.api_client()
    hub_api = hub.api_client()
    connection = ["--kubeconfig", str(hub.kubeconfig), "--cluster-kubeconfig", str(member.kubeconfig)]

    # -- join with the member's admin kubeconfig ---------------------------------------------------
    joined = kubectl_flotilla("join", NAME, *connection, "--labels", "joined=yes", "--region", "eu-test")
    assert joined.returncode == 0, joined.stderr
    assert f"  clusterrole.rbac.authorization.k8s.io/{ROLE} created" in joined.stdout
    assert f"  membercluster.flotilla.dev/{NAME} created" in joined.stdout
    assert joined.stderr == ""
    again = kubectl_flotilla("join", NAME, *connection, "--labels", "joined=yes", "--region", "eu-test")
    assert again.returncode == 0, again.stderr
    assert f"  serviceaccount/{SA} unchanged (namespace flotilla-system)" in again.stdout

    completion = kubectl_flotilla("__complete", "cordon", "--kubeconfig", str(hub.kubeconfig), "joi")
    assert completion.stdout == f"{NAME}\n:4\n"  # shell completion asks the hub for cluster names

    mc = kube.get(hub_api, GROUP_VERSION, "MemberCluster", NAME)
    assert mc is not None
    assert mc["metadata"]["labels"] == {"joined": "yes"} and mc["spec"]["region"] == "eu-test"
    text = _hub_kubeconfig_text(hub)
    doc = yaml.safe_load(text)
    token = doc["users"][0]["user"]["token"]
    assert doc["users"][0]["user"] == {"token": token}  # a token, no client certificate
    assert token != member.token
    assert _jwt_subject(token) == f"system:serviceaccount:flotilla-system:{SA}"
    assert doc["clusters"][0]["cluster"]["server"] == member.server

    # The joined identity can do what the operator does and nothing more.
    joined_api = ApiClient(load_kubeconfig(text))
    assert kube.list_objects(joined_api, "v1", "Node")
    for forbidden in (
        lambda: kube.get(joined_api, "v1", "Secret", f"{SA}-token", "flotilla-system"),
        lambda: kube.list_objects(joined_api, "v1", "Secret"),
        lambda: kube.get(joined_api, "apps/v1", "Deployment", "x", "default"),
        lambda: kube.list_objects(joined_api, "rbac.authorization.k8s.io/v1", "ClusterRole"),
    ):
        with pytest.raises(ApiException) as err:
            forbidden()
        assert err.value.status == 403

    # -- the operator on the joined token: inventory, then propagation ----------------------------
    ns = f"join-{uuid.uuid4().hex[:5]}"
    name = "joined-infer"
    with running_operator(hub):
        ready = kube.wait_for(partial(member_ready, hub, NAME), timeout=WAIT, what=f"{NAME} Ready")
        assert ready["status"]["nodeSummary"]["totalNum"] > 0
        assert ready["status"]["resourceSummary"]["gpuModels"]
        kube.ensure_namespace(hub_api, ns)
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-config", "namespace": ns},
            "data": {"model": "llama-8b"},
        }
        kube.apply(hub_api, config_map)
        kube.apply(
            hub_api,
            {
                "apiVersion": GROUP_VERSION,
                "kind": "FederatedResourceQuota",
                "metadata": {"name": "gpus", "namespace": ns},
                "spec": {
                    "overall": {"nvidia.com/gpu": 8},
                    "staticAssignments": [{"clusterName": NAME, "hard": {"nvidia.com/gpu": 4}}],
                },
            },
        )
        kube.apply(
            hub_api,
            {
                "apiVersion": GROUP_VERSION,
                "kind": "PropagationPolicy",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                    "placement": {"clusterAffinity": {"clusterNames": [NAME]}},
                },
            },
        )
        kube.apply(hub_api, _deployment(ns, name))
        kube.wait_for(
            lambda: (
                (condition_of(binding(hub, ns, f"{name}-deployment"), "FullyApplied") or {}).get("status")
                == "True"
            ),
            timeout=WAIT,
            what="the Deployment to be applied to joined-c",
        )
        copy = kube.get(member_api, "apps/v1", "Deployment", name, ns)
        assert copy is not None and copy["metadata"]["labels"]["flotilla.dev/managed-by"] == "flotilla"
        assert kube.get(member_api, "v1", "ConfigMap", f"{name}-config", ns) is not None
        quota = kube.wait_for(
            lambda: kube.get(member_api, "v1", "ResourceQuota", "flotilla-gpus", ns),
            timeout=WAIT,
            what="the static quota share on the member",
        )
        assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "4"}
        # removal under the same rights
        kube.delete(hub_api, _deployment(ns, name))
        kube.wait_for(
            lambda: kube.get(member_api, "apps/v1", "Deployment", name, ns) is None,
            timeout=WAIT,
            what="the copy to be removed from the member",
        )

        # -- unjoin ------------------------------------------------------------------------------
        unjoined = kubectl_flotilla("unjoin", NAME, *connection)
        assert unjoined.returncode == 0, unjoined.stderr
        assert f"  membercluster.flotilla.dev/{NAME} deleted" in unjoined.stdout
        assert f"  clusterrole.rbac.authorization.k8s.io/{ROLE} deleted" in unjoined.stdout

    assert kube.get(hub_api, GROUP_VERSION, "MemberCluster", NAME) is None
    assert kube.get(hub_api, "v1", "Secret", f"{NAME}-kubeconfig", SYSTEM_NS) is None
    assert kube.get(member_api, "v1", "ServiceAccount", SA, "flotilla-system") is None
    assert kube.get(member_api, "v1", "Secret", f"{SA}-token", "flotilla-system") is None
    assert kube.get(member_api, "rbac.authorization.k8s.io/v1", "ClusterRole", ROLE) is None
    assert kube.get(member_api, "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", ROLE) is None
    namespace = kube.get(member_api, "v1", "Namespace", "flotilla-system")  # join made it: going
    assert namespace is None or namespace["status"]["phase"] == "Terminating"
    again = kubectl_flotilla("unjoin", NAME, "--kubeconfig", str(hub.kubeconfig))
    assert again.returncode == 1
    assert again.stderr == f"flotilla: error: membercluster '{NAME}' not found (nothing to unjoin)\n"
    kube.delete(hub_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.delete(member_api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
