"""Waiting for the pods the Kubeflow training operator makes for a PyTorchJob on a rig member."""

from __future__ import annotations

from typing import Any

from flotilla import kube
from flotilla.rig.cluster import ClusterHandle

JOB_NAME_LABEL = "training.kubeflow.org/job-name"
REPLICA_TYPE_LABEL = "training.kubeflow.org/replica-type"


def pytorchjob_pods(member: ClusterHandle, ns: str, name: str) -> list[dict[str, Any]]:
    """The pods the training operator created for PyTorchJob ``ns/name`` on ``member``."""
    return kube.list_objects(member.api_client(), "v1", "Pod", ns, label_selector=f"{JOB_NAME_LABEL}={name}")


def wait_pytorchjob_running(
    member: ClusterHandle, ns: str, name: str, expected: int, timeout: float
) -> list[dict[str, Any]]:
    """Wait until exactly ``expected`` pods of the PyTorchJob are Running on nodes; return them."""

    def running() -> list[dict[str, Any]] | None:
        pods = pytorchjob_pods(member, ns, name)
        ok = len(pods) == expected and all(
            p["status"].get("phase") == "Running" and p["spec"].get("nodeName") for p in pods
        )
        return pods if ok else None

    return kube.wait_for(running, timeout=timeout, what=f"{expected} Running pods of PyTorchJob {ns}/{name}")


def wait_pytorchjob_pods_gone(member: ClusterHandle, ns: str, name: str, timeout: float) -> None:
    """Wait until the PyTorchJob's pods are deleted (they hold GPUs other tests count on)."""
    kube.wait_for(
        lambda: not pytorchjob_pods(member, ns, name),
        timeout=timeout,
        what=f"the pods of PyTorchJob {ns}/{name} to be deleted",
    )


def replica_types(pods: list[dict[str, Any]]) -> list[str]:
    """The sorted replica types (``master``, ``worker``) of the pods."""
    return sorted(p["metadata"]["labels"][REPLICA_TYPE_LABEL] for p in pods)
