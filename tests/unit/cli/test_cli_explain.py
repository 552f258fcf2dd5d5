"""``kubectl flotilla explain -f``: a what-if from members' objects, decided with the shipped profile."""

from __future__ import annotations

from typing import Any

import pytest

from flotilla import cli
from flotilla.explain import MemberData, explain, render, snapshot_of
from flotilla.rig.fleet import parse_fleet

FLEET = parse_fleet(
    {
        "members": [
            {
                "name": "a",
                "nodePools": [
                    {
                        "name": "h100",
                        "count": 2,
                        "gpu": {"count": 8, "product": "NVIDIA-H100-80GB-HBM3", "memoryMiB": 81559},
                    }
                ],
            },
            {
                "name": "c",
                "nodePools": [
                    {
                        "name": "l4",
                        "count": 4,
                        "gpu": {"count": 1, "product": "NVIDIA-L4", "memoryMiB": 23034},
                    }
                ],
            },
        ]
    }
)
APIS = [{"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]}]


def member_cluster(name: str, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "MemberCluster",
        "metadata": {"name": name, "labels": {"gpu": name}},
        "spec": {"secretRef": {"namespace": "flotilla-system", "name": f"{name}-kubeconfig"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "apiEnablements": APIS,
        },
    }


def nodes(name: str) -> list[dict[str, Any]]:
    out = []
    for node in FLEET.member(name).nodes():
        node["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
        out.append(node)
    return out


def running_pod(node: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"busy-{node}", "namespace": "x", "uid": f"u-{node}"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}],
        },
        "status": {"phase": "Running"},
    }


def deployment(name: str, gpus: int, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "s",
                            "image": "x",
                            "resources": {
                                "requests": {"nvidia.com/gpu": str(gpus)},
                                "limits": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ]
                },
            },
        },
    }


def policy(*clusters: str) -> dict[str, Any]:
    return {
        "apiVersion": "flotilla.dev/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": "gpus", "namespace": "team"},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
            "placement": {"clusterAffinity": {"clusterNames": list(clusters)}},
        },
    }


def fleet(busy: bool = False) -> list[MemberData]:
    a_pods = [running_pod(n["metadata"]["name"], 8) for n in nodes("a")] if busy else []
    return [
        MemberData(member_cluster("a"), nodes("a"), a_pods),
        MemberData(member_cluster("c"), nodes("c")),
        MemberData(member_cluster("b"), problem="connection refused"),
    ]


def test_an_8_gpu_pod_goes_where_a_node_has_8_free_and_says_why_not_elsewhere() -> None:
    members = fleet()
    [result] = explain(
        [policy("a", "b", "c"), deployment("big", 8)], snapshot_of(members), [], namespace="team"
    )
    assert result.workload == "team/Deployment/big"
    assert result.policy == "PropagationPolicy/team/gpus"
    assert result.ok and result.message == "would be scheduled to a:1"
    by_cluster = {c["cluster"]: c for c in result.explanation["clusters"]}
    assert by_cluster["a"]["selected"] and by_cluster["a"]["replicas"] == 1
    assert not by_cluster["c"]["feasible"]  # four free L4s, but one per node
    assert not by_cluster["b"]["feasible"]  # not read: not Ready
    text = render([result], members)
    assert text.splitlines()[0] == "member b: not read (connection refused)"
    assert "Decision:   would be scheduled to a:1" in text
    assert any(line.startswith("  c ") and "rejected by" in line for line in text.splitlines())
    assert text.rstrip().endswith("(this scores with its prior))")


def test_pods_running_on_members_count() -> None:
    [result] = explain(
        [deployment("big", 8)], snapshot_of(fleet(busy=True)), [policy("a", "c")], namespace="team"
    )
    assert not result.ok
    assert result.message.startswith("0/")
    assert "nvidia.com/gpu" in result.message


def test_workloads_no_policy_selects_and_unknown_kinds_say_so() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}}
    other_ns = {**deployment("web", 1), "metadata": {"name": "web", "namespace": "elsewhere"}}
    results = explain([service, other_ns], snapshot_of(fleet()), [policy("a")], namespace="team")
    assert [(r.workload, r.ok, r.policy) for r in results] == [
        ("team/Service/svc", False, None),
        ("elsewhere/Deployment/web", False, None),
    ]
    assert results[0].message == "Flotilla has no interpreter for v1 Service"
    assert results[1].message.startswith("no PropagationPolicy or ClusterPropagationPolicy selects it")


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"kind": "Deployment"}, "document 1: not a Kubernetes object"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}, "metadata.name is required"),
    ],
)
def test_bad_documents_are_named(doc: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        explain([doc], snapshot_of([]), [], namespace="team")


def test_the_command_takes_a_file_and_the_usual_hub_options() -> None:
    args = cli.build_parser().parse_args(["explain", "-f", "job.yaml", "--context", "prod", "-o", "json"])
    assert (args.filename, args.context, args.output, args.namespace) == ("job.yaml", "prod", "json", None)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["explain"])
