"""The operator end to end on the rig: register members, place, propagate, reflect, remove."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from operator_support import (
    GROUP_VERSION,
    REPO,
    SYSTEM_NS,
    WAIT,
    binding,
    condition_of,
    fleet_operator,
    gpu_deployment,
    member_ready,
    new_namespace,
)
from pytorchjob_support import replica_types, wait_pytorchjob_pods_gone, wait_pytorchjob_running

from flotilla import kube
from flotilla.interpreter.keys import HUB_MANAGER
from flotilla.rig.binaries import locate
from flotilla.rig.cluster import ClusterHandle


@pytest.fixture(scope="module")
def operator(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> Iterator[KopfRunner]:
    with fleet_operator(hub, members) as runner:
        yield runner


def _with_config_volume(deployment: dict[str, Any], config_map: str) -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "config", "configMap": {"name": config_map}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "config", "mountPath": "/etc/model"}]
    return deployment


def _policy(ns: str, name: str, kind: str, api_version: str, placement: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "resourceSelectors": [{"apiVersion": api_version, "kind": kind, "name": name}],
            "placement": placement,
        },
    }


def _member_obj(
    member: ClusterHandle, api_version: str, kind: str, name: str, ns: str
) -> dict[str, Any] | None:
    return kube.get(member.api_client(), api_version, kind, name, ns)


def _replicas_on(members: dict[str, ClusterHandle], ns: str, name: str) -> dict[str, int]:
    out = {}
    for cname, member in members.items():
        obj = _member_obj(member, "apps/v1", "Deployment", name, ns)
        if obj is not None:
            out[cname] = obj["spec"]["replicas"]
    return out


def test_members_ready_with_gpu_summary(operator: KopfRunner, hub: ClusterHandle) -> None:
    mc = kube.wait_for(lambda: member_ready(hub, "a"), timeout=WAIT, what="member a Ready")
    summary = mc["status"]["resourceSummary"]
    models = {m["model"]: m for m in summary["gpuModels"]}
    assert models["NVIDIA-H100-80GB-HBM3"]["total"] == 40
    assert mc["status"]["nodeSummary"]["totalNum"] == 5
    kinds = {(e["groupVersion"], r["kind"]) for e in mc["status"]["apiEnablements"] for r in e["resources"]}
    assert ("kubeflow.org/v1", "PyTorchJob") in kinds


def test_divided_static_weights_scale_and_delete(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    ns = new_namespace(hub, "weights")
    name = "infer"
    kube.apply(
        api,
        _policy(
            ns,
            name,
            "Deployment",
            "apps/v1",
            {
                "clusterAffinity": {"clusterNames": ["a", "b"]},
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Weighted",
                    "weightPreference": {
                        "staticWeightList": [
                            {"targetCluster": {"clusterNames": ["a"]}, "weight": 1},
                            {"targetCluster": {"clusterNames": ["b"]}, "weight": 2},
                        ]
                    },
                },
            },
        ),
    )
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "infer-config", "namespace": ns},
        "data": {"model": "llama-3.1-8b"},
    }
    kube.apply(api, config)
    kube.apply(api, _with_config_volume(gpu_deployment(ns, name, 9), "infer-config"))
    kube.wait_for(
        lambda: _replicas_on(members, ns, name) == {"a": 3, "b": 6},
        timeout=WAIT,
        what="9 replicas divided 3/6 over a and b",
    )
    # The copies are applied first; the status write recording them carries the explanation.
    rb = kube.wait_for(
        lambda: (lambda b: b if (condition_of(b, "FullyApplied") or {}).get("status") == "True" else None)(
            binding(hub, ns, f"{name}-deployment")
        ),
        timeout=WAIT,
        what="the binding to record its applied copies",
    )
    assert condition_of(rb, "Scheduled")["status"] == "True"  # type: ignore[index]
    explanation = rb["status"]["explanation"]
    assert {c["cluster"] for c in explanation["clusters"] if c["selected"]} == {"a", "b"}
    # What the learning GPUFragmentation scored with is recorded with the decision: the shipped
    # setting, its epoch and the five heaviest pod shapes.
    learned = explanation["profile"]["GPUFragmentation"]
    assert learned["learn"] is True and learned["halfLife"] == 5000 and learned["epoch"] >= 0
    assert len(learned["classes"]) == 5 and all(0 < c["weight"] <= 1 for c in learned["classes"])

    # Ready replicas on the members are reflected onto the hub template.
    def ready_on_hub() -> bool:
        dep = kube.get(api, "apps/v1", "Deployment", name, ns) or {}
        return (dep.get("status") or {}).get("readyReplicas") == 9

    kube.wait_for(ready_on_hub, timeout=WAIT, what="readyReplicas 9 aggregated on the hub template")
    # The aggregated status follows the Deployment's conventions (observedGeneration included), so
    # kubectl rollout status on the hub finishes, as GitOps health checks do.
    rollout = subprocess.run(
        [
            str(locate().kubectl),
            "--kubeconfig",
            str(hub.kubeconfig),
            "-n",
            ns,
            "rollout",
            "status",
            f"deployment/{name}",
            "--timeout=60s",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert rollout.returncode == 0, rollout.stdout + rollout.stderr
    assert "successfully rolled out" in rollout.stdout

    # The ConfigMap the pod template mounts travelled with it.
    for cluster in ("a", "b"):
        copy = kube.get(members[cluster].api_client(), "v1", "ConfigMap", "infer-config", ns)
        assert copy is not None and copy["data"] == {"model": "llama-3.1-8b"}

    # Drift on a member is corrected: someone scales the copy on b by hand.
    member_b = members["b"].api_client()
    kube.patch(member_b, gpu_deployment(ns, name, 9), {"spec": {"replicas": 1}})
    kube.wait_for(
        lambda: _replicas_on(members, ns, name) == {"a": 3, "b": 6},
        timeout=WAIT,
        what="the drifted copy on b to be restored to 6 replicas",
    )

    kube.apply(api, _with_config_volume(gpu_deployment(ns, name, 12), "infer-config"))
    kube.wait_for(
        lambda: _replicas_on(members, ns, name) == {"a": 4, "b": 8},
        timeout=WAIT,
        what="12 replicas divided 4/8 after scaling",
    )

    kube.delete(api, gpu_deployment(ns, name, 12))
    kube.wait_for(lambda: _replicas_on(members, ns, name) == {}, timeout=WAIT, what="both copies removed")
    kube.wait_for(
        lambda: binding(hub, ns, f"{name}-deployment") is None, timeout=WAIT, what="binding removed"
    )


def _pytorchjob(ns: str, name: str, workers: int, gpus: int) -> dict[str, Any]:
    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": "OnFailure",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "pytorch",
                            "image": "nvcr.io/nvidia/pytorch:24.08-py3",
                            "resources": {
                                "requests": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": str(gpus)},
                                "limits": {"nvidia.com/gpu": str(gpus)},
                            },
                        }
                    ]
                }
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(workers)}},
    }


def test_pytorchjob_gang_needs_whole_nodes(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    """4 pods x 8 GPUs go to a (5 nodes of 8: 40 GPUs) even though b has more free GPUs (48, 4 per node)."""
    api = hub.api_client()
    ns = new_namespace(hub, "gang")
    name = "llm-pretrain"
    kube.apply(api, _policy(ns, name, "PyTorchJob", "kubeflow.org/v1", {}))
    kube.apply(api, _pytorchjob(ns, name, workers=3, gpus=8))

    def placed() -> dict[str, Any] | None:
        # The decision is in the spec from the first write; its explanation follows in the status
        # write that records the applied copy, with Scheduled=True.
        rb = binding(hub, ns, f"{name}-pytorchjob")
        scheduled = (condition_of(rb, "Scheduled") or {}).get("status") == "True"
        return rb if rb and (rb.get("spec") or {}).get("clusters") and scheduled else None

    rb = kube.wait_for(placed, timeout=WAIT, what="the PyTorchJob to be scheduled")
    assert [c["name"] for c in rb["spec"]["clusters"]] == ["a"]
    assert rb["spec"]["schedulingGroup"]["minMember"] == 4
    explanation = {c["cluster"]: c for c in rb["status"]["explanation"]["clusters"]}
    assert explanation["b"]["feasible"] is False
    assert "nvidia.com/gpu" in str(explanation["b"]).lower()
    kube.wait_for(
        lambda: _member_obj(members["a"], "kubeflow.org/v1", "PyTorchJob", name, ns),
        timeout=WAIT,
        what="the PyTorchJob on member a",
    )
    assert _member_obj(members["b"], "kubeflow.org/v1", "PyTorchJob", name, ns) is None
    # Member a runs the Kubeflow training operator: the copy becomes 1 master + 3 workers, each
    # bound to a whole H100 node of a.
    pods = wait_pytorchjob_running(members["a"], ns, name, expected=4, timeout=WAIT)
    assert replica_types(pods) == ["master", "worker", "worker", "worker"]
    a_nodes = {n["metadata"]["name"] for n in kube.list_objects(members["a"].api_client(), "v1", "Node")}
    assert len({p["spec"]["nodeName"] for p in pods}) == 4
    assert {p["spec"]["nodeName"] for p in pods} <= a_nodes
    kube.delete(api, _pytorchjob(ns, name, 3, 8))
    try:  # removing the hub template removes the copy on a, and the operator's pods with it
        wait_pytorchjob_pods_gone(members["a"], ns, name, timeout=WAIT)
    finally:  # if not, still free a's nodes for the tests that follow (this test fails either way)
        kube.delete(members["a"].api_client(), _pytorchjob(ns, name, 3, 8))


def test_kind_not_served_is_never_sent(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    ns = new_namespace(hub, "apienable")
    name = "lws-infer"
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": {
                    "spec": {
                        "containers": [
                            {
                                "name": "w",
                                "image": "vllm/vllm-openai:v0.6.3",
                                "resources": {"requests": {"cpu": "1"}},
                            }
                        ]
                    }
                },
            },
        },
    }
    kube.apply(api, _policy(ns, name, "LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", {}))
    kube.apply(api, lws)

    def decided() -> dict[str, Any] | None:
        rb = binding(hub, ns, f"{name}-leaderworkerset")
        return rb if condition_of(rb, "FullyApplied") else None

    rb = kube.wait_for(decided, timeout=WAIT, what="the LeaderWorkerSet to be applied")
    chosen = {c["name"] for c in rb["spec"]["clusters"]}
    assert chosen == {"a"}  # the only member serving leaderworkersets.leaderworkerset.x-k8s.io
    rejected = {c["cluster"]: c for c in rb["status"]["explanation"]["clusters"] if not c["feasible"]}
    assert rejected["c"]["filter"]["plugin"] == "APIEnablement"
    kube.delete(api, lws)


def _blocker(ns: str) -> dict[str, Any]:
    dep = gpu_deployment(ns, "blocker", 5, gpus=8)
    dep["metadata"]["labels"] = {"purpose": "occupy-member-a"}
    return dep


def test_waits_with_condition_then_placed_when_capacity_frees(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    ns = new_namespace(hub, "waits")
    member_a = members["a"].api_client()
    kube.ensure_namespace(member_a, ns)
    # Occupy every H100 on member a directly on the member, behind Flotilla's back.
    kube.apply(member_a, _blocker(ns))
    kube.wait_for(
        lambda: (
            (kube.get(member_a, "apps/v1", "Deployment", "blocker", ns) or {})
            .get("status", {})
            .get("readyReplicas")
            == 5
        ),
        timeout=WAIT,
        what="the blocker to occupy member a",
    )
    name = "train"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "t",
                            "image": "nvcr.io/nvidia/pytorch:24.08-py3",
                            "resources": {
                                "requests": {"cpu": "8", "nvidia.com/gpu": "8"},
                                "limits": {"nvidia.com/gpu": "8"},
                            },
                        }
                    ],
                }
            }
        },
    }
    kube.apply(api, _policy(ns, name, "Job", "batch/v1", {"clusterAffinity": {"clusterNames": ["a"]}}))
    kube.apply(api, job)

    def waiting() -> dict[str, Any] | None:
        cond = condition_of(binding(hub, ns, f"{name}-job"), "Scheduled")
        return cond if cond and cond["status"] == "False" else None

    cond = kube.wait_for(waiting, timeout=WAIT, what="the Job to wait with Scheduled=False")
    assert cond["message"].startswith("0/")
    assert "nvidia.com/gpu" in cond["message"]
    assert _member_obj(members["a"], "batch/v1", "Job", name, ns) is None

    kube.delete(member_a, _blocker(ns))

    def succeeded_on_a() -> bool:
        obj = _member_obj(members["a"], "batch/v1", "Job", name, ns) or {}
        return (obj.get("status") or {}).get("succeeded") == 1

    kube.wait_for(succeeded_on_a, timeout=WAIT, what="the Job to be placed on a and succeed")
    # Hub hold: the hub's Job was claimed with spec.managedBy when it was created (a hub with
    # controllers never runs it; docs/hub-hold.md); the member's copy ran without it.
    hub_job = kube.get(api, "batch/v1", "Job", name, ns) or {}
    assert hub_job["spec"]["managedBy"] == HUB_MANAGER
    assert hub_job["spec"]["suspend"] is False
    assert kube.list_objects(api, "v1", "Pod", ns) == []
    member_job = _member_obj(members["a"], "batch/v1", "Job", name, ns) or {}
    assert "managedBy" not in member_job["spec"]
    assert member_job["spec"]["suspend"] is False
    kube.wait_for(
        lambda: (
            ((kube.get(api, "batch/v1", "Job", name, ns) or {}).get("status") or {}).get("succeeded") == 1
        ),
        timeout=WAIT,
        what="succeeded=1 reflected on the hub Job",
    )


def test_bound_pods_confirm_the_reservation_before_the_workload_is_healthy(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    """The reservation of a decision gives way to the member's pods as they are bound, not when
    the workload turns healthy: a workload whose pods run but never become available (a long
    ``minReadySeconds``) must not keep its GPUs counted twice. Member a has five 8-GPU nodes;
    three are taken by ``slow``, so ``next`` (two 8-GPU pods) fits only if they are counted once
    (the reservation would otherwise last its 300 s TTL, longer than this test waits)."""
    api = hub.api_client()
    member_a = members["a"].api_client()
    ns = new_namespace(hub, "confirm")
    on_a = {"clusterAffinity": {"clusterNames": ["a"]}}
    slow = gpu_deployment(ns, "slow", replicas=3, gpus=8)
    slow["spec"]["minReadySeconds"] = 3600
    slow["spec"]["progressDeadlineSeconds"] = 7200
    kube.apply(api, _policy(ns, "slow", "Deployment", "apps/v1", on_a))
    kube.apply(api, slow)

    def bound_pods(app: str) -> list[dict[str, Any]]:
        pods = kube.list_objects(member_a, "v1", "Pod", ns, label_selector=f"app={app}")
        return [p for p in pods if p["spec"].get("nodeName")]

    pods = kube.wait_for(
        lambda: len(bound_pods("slow")) == 3 and bound_pods("slow"),
        timeout=WAIT,
        what="slow's pods bound on a",
    )
    assert {p["metadata"]["labels"]["flotilla.dev/binding"] for p in pods} == {"slow-deployment"}

    def reported() -> dict[str, Any] | None:
        items = ((binding(hub, ns, "slow-deployment") or {}).get("status") or {}).get("aggregatedStatus")
        return next((i for i in items or () if i.get("status")), None)

    item = kube.wait_for(reported, timeout=WAIT, what="slow's member status on the binding")
    assert item["clusterName"] == "a" and item.get("health") != "Healthy"  # never available

    kube.apply(api, _policy(ns, "next", "Deployment", "apps/v1", on_a))
    kube.apply(api, gpu_deployment(ns, "next", replicas=2, gpus=8))
    kube.wait_for(lambda: len(bound_pods("next")) == 2, timeout=WAIT, what="next placed on a beside slow")
    kube.wait_for(
        lambda: (
            (condition_of(binding(hub, ns, "next-deployment"), "Scheduled") or {}).get("status") == "True"
        ),
        timeout=WAIT,
        what="next Scheduled=True",
    )
    for name in ("slow", "next"):
        kube.delete(api, gpu_deployment(ns, name))
    kube.wait_for(
        lambda: not kube.list_objects(member_a, "v1", "Pod", ns), timeout=WAIT, what="member a freed"
    )


def test_broken_kubeconfig_is_a_condition(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    api = hub.api_client()
    kube.apply(
        api,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "broken-kubeconfig", "namespace": SYSTEM_NS},
            "stringData": {"kubeconfig": "this: [is not a kubeconfig"},
        },
    )
    broken = {
        "apiVersion": GROUP_VERSION,
        "kind": "MemberCluster",
        "metadata": {"name": "broken"},
        "spec": {"secretRef": {"namespace": SYSTEM_NS, "name": "broken-kubeconfig"}},
    }
    kube.apply(api, broken)

    def not_ready() -> dict[str, Any] | None:
        cond = condition_of(kube.get(api, GROUP_VERSION, "MemberCluster", "broken"), "Ready")
        return cond if cond and cond["status"] == "False" else None

    cond = kube.wait_for(not_ready, timeout=WAIT, what="MemberCluster broken to be Ready=False")
    assert cond["reason"] == "KubeconfigInvalid"
    for name in members:
        assert member_ready(hub, name), f"member {name} stayed Ready"
    kube.delete(api, broken)


def test_customized_kind_is_placed_without_python(
    operator: KopfRunner, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    """The RayCluster example: an InterpreterCustomization teaches the kind; it lands where it is served."""
    api = hub.api_client()
    docs = kube.load_manifests(REPO / "examples" / "raycluster-customization.yaml")
    for doc in sorted(
        docs,
        key=lambda d: (
            ["Namespace", "InterpreterCustomization"].index(d["kind"])
            if d["kind"] in ("Namespace", "InterpreterCustomization")
            else 2
        ),
    ):
        kube.apply(api, doc)
    ray = next(d for d in docs if d["kind"] == "RayCluster")
    ns, name = ray["metadata"]["namespace"], ray["metadata"]["name"]

    def applied() -> dict[str, Any] | None:
        rb = binding(hub, ns, f"{name}-raycluster")
        cond = condition_of(rb, "FullyApplied")
        return rb if cond and cond["status"] == "True" else None

    rb = kube.wait_for(applied, timeout=WAIT, what="the RayCluster to be placed and applied")
    # b: the only member that serves RayCluster and matches the example's gpu-generation selector
    assert [c["name"] for c in rb["spec"]["clusters"]] == ["b"]
    components = {c["name"]: c["replicas"] for c in rb["spec"]["components"]}
    assert components["head"] == 1
    copy = _member_obj(members["b"], "ray.io/v1", "RayCluster", name, ns)
    assert copy is not None
    assert copy["metadata"]["labels"]["flotilla.dev/managed-by"] == "flotilla"
    for doc in docs:
        if doc["kind"] != "Namespace":
            kube.delete(api, doc)


def test_cli_lists_clusters_and_explains_a_placement(
    operator: KopfRunner, hub: ClusterHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from flotilla.cli import main

    api = hub.api_client()
    ns = new_namespace(hub, "cli")
    name = "big-infer"
    kube.apply(api, _policy(ns, name, "Deployment", "apps/v1", {}))
    kube.apply(api, gpu_deployment(ns, name, 1, gpus=8))  # no L4 (c) or A100 (b) node has 8 GPUs
    kube.wait_for(
        lambda: (
            (condition_of(binding(hub, ns, f"{name}-deployment"), "FullyApplied") or {}).get("status")
            == "True"
        ),
        timeout=WAIT,
        what="the workload to be applied",
    )
    kubeconfig = ["--kubeconfig", str(hub.kubeconfig)]
    assert main(["get", "clusters", "-o", "json", *kubeconfig]) == 0
    clusters = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert clusters["a"]["ready"] == "True" and clusters["a"]["gpusTotal"] == 40
    assert main(["get", "workloads", "-n", ns, *kubeconfig]) == 0
    listing = capsys.readouterr().out
    assert f"Deployment/{name}" in listing and "a" in listing.split(f"Deployment/{name}")[1]
    assert main(["describe", "workload", f"Deployment/{name}", "-n", ns, *kubeconfig]) == 0
    text = capsys.readouterr().out
    assert "a            selected" in text
    assert "rejected by NodeResourcesFit" in text  # b and c: no node with 8 free GPUs
    kube.delete(api, gpu_deployment(ns, name, 1))
