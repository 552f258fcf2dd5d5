"""Pod-spec arithmetic shared by every interpreter: effective requests, placement terms, references."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from flotilla.scheduler.quantity import ResourceList, parse_resource_list

__all__ = [
    "container_requests",
    "pod_dependencies",
    "pod_requests",
    "required_node_selector_terms",
]

_POD_LEVEL_RESOURCES = ("cpu", "memory")
"""Resources that pod-level ``spec.resources`` may set (Kubernetes PodLevelResources)."""


def _effective(resources: Mapping[str, Any] | None) -> ResourceList:
    """Requests with limits as the fallback per resource (the API server's defaulting)."""
    if not resources:
        return {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return parse_resource_list(merged)


def container_requests(container: Mapping[str, Any]) -> ResourceList:
    """A container's effective requests: ``requests``, falling back to ``limits`` per resource."""
    return _effective(container.get("resources"))


def _add_into(total: ResourceList, extra: Mapping[str, int]) -> None:
    for name, amount in extra.items():
        total[name] = total.get(name, 0) + amount


def _max_into(total: ResourceList, other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        total[name] = max(total.get(name, 0), amount)


def pod_requests(pod_spec: Mapping[str, Any]) -> ResourceList:
    """Effective requests of one pod, as kube-scheduler computes them.

    The sum of app containers, raised per resource to the largest init container; restartable
    (sidecar, ``restartPolicy: Always``) init containers run alongside everything after them, so
    they add to the app sum and to each later init container. Pod-level ``spec.resources``
    (cpu/memory) replaces the container sum for those resources, and ``spec.overhead`` is added.
    Zero amounts are dropped.
    """
    total: ResourceList = {}
    for container in pod_spec.get("containers") or []:
        _add_into(total, container_requests(container))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in pod_spec.get("initContainers") or []:
        own = container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add_into(total, own)
            _add_into(sidecars, own)
            _max_into(init_peak, sidecars)
        else:
            running = dict(sidecars)
            _add_into(running, own)
            _max_into(init_peak, running)
    _max_into(total, init_peak)
    pod_level = _effective(pod_spec.get("resources"))
    for name in _POD_LEVEL_RESOURCES:
        if name in pod_level:
            total[name] = pod_level[name]
    _add_into(total, parse_resource_list(pod_spec.get("overhead")))
    return {name: amount for name, amount in total.items() if amount}


def required_node_selector_terms(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The required node-affinity ``nodeSelectorTerms`` (ORed), deep-copied; empty when none."""
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return copy.deepcopy(list(required.get("nodeSelectorTerms") or []))


def _containers(pod_spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key) or []


def _volume_references(volume: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    config_map = volume.get("configMap")
    if isinstance(config_map, Mapping) and config_map.get("name"):
        yield "ConfigMap", config_map["name"]
    secret = volume.get("secret")
    if isinstance(secret, Mapping) and secret.get("secretName"):
        yield "Secret", secret["secretName"]
    for source in (volume.get("projected") or {}).get("sources") or []:
        for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            ref = source.get(key)
            if isinstance(ref, Mapping) and ref.get("name"):
                yield kind, ref["name"]
    # Volume plugins that read credentials from a Secret in the pod's namespace
    # (cephfs, rbd, iscsi, flexVolume, azureFile, csi ...).
    for value in volume.values():
        if not isinstance(value, Mapping):
            continue
        for key in ("secretRef", "nodePublishSecretRef"):
            ref = value.get(key)
            if isinstance(ref, Mapping) and ref.get("name"):
                yield "Secret", ref["name"]
        if isinstance(value.get("secretName"), str) and value["secretName"]:
            yield "Secret", value["secretName"]


def pod_dependencies(pod_spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """ConfigMaps and Secrets a pod spec references, as ``{(kind, name)}``.

    Looks at volumes (configMap, secret, projected sources and volume plugins' secret refs),
    container ``envFrom`` and ``env[].valueFrom``, and ``imagePullSecrets``.
    """
    found: set[tuple[str, str]] = set()
    for volume in pod_spec.get("volumes") or []:
        found.update(_volume_references(volume))
    for container in _containers(pod_spec):
        for source in container.get("envFrom") or []:
            if (source.get("configMapRef") or {}).get("name"):
                found.add(("ConfigMap", source["configMapRef"]["name"]))
            if (source.get("secretRef") or {}).get("name"):
                found.add(("Secret", source["secretRef"]["name"]))
        for env in container.get("env") or []:
            value_from = env.get("valueFrom") or {}
            if (value_from.get("configMapKeyRef") or {}).get("name"):
                found.add(("ConfigMap", value_from["configMapKeyRef"]["name"]))
            if (value_from.get("secretKeyRef") or {}).get("name"):
                found.add(("Secret", value_from["secretKeyRef"]["name"]))
    for ref in pod_spec.get("imagePullSecrets") or []:
        if ref.get("name"):
            found.add(("Secret", ref["name"]))
    return found
