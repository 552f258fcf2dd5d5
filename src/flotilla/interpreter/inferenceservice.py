"""serving.kserve.io/v1beta1 InferenceService.

Components: ``predictor`` (``minReplicas``, default 1), ``predictor-worker`` for multi-node
serving (``workerSpec``: ``pipelineParallelSize - 1`` worker pods per predictor replica, the size
taken as 2 when unset), and ``transformer`` / ``explainer`` when present. A predictor pod runs the
model/framework container (``model``, ``pytorch``, ``triton`` ...; named ``kserve-container``) next
to ``containers`` (an entry of that name is merged away); KServe-injected sidecars (queue-proxy,
agent, storage-initializer) are not modelled. The component's ``pod_template`` is that synthesized
PodTemplateSpec view; editing it does not change the object.

Division: on the predictor's ``minReplicas``. Revising to ``n`` sets ``minReplicas = n`` and scales
``maxReplicas`` by the same factor (rounded up, at least ``n``); transformer and explainer keep
their own settings in every member (each member copy needs its own). ``minReplicas: 0``
(scale-to-zero) is not divisible: ``replicas`` is None and the service goes whole.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from flotilla.interpreter import status as st
from flotilla.interpreter.base import BaseInterpreter, Component, Health, Obj, component_from_template

__all__ = ["InferenceServiceInterpreter"]

_FRAMEWORKS = (
    "model",
    "huggingface",
    "pytorch",
    "triton",
    "tensorflow",
    "onnx",
    "sklearn",
    "xgboost",
    "lightgbm",
    "paddle",
    "pmml",
    "art",
)
_EXTENSION_FIELDS = frozenset(
    {
        "minReplicas",
        "maxReplicas",
        "scaleTarget",
        "scaleMetric",
        "scaleMetricType",
        "autoScaling",
        "containerConcurrency",
        "timeout",
        "canaryTrafficPercent",
        "logger",
        "batcher",
        "labels",
        "annotations",
        "deploymentStrategy",
        "storageUris",
        "storageContainerName",
        "workerSpec",
        "name",
        "pipelineParallelSize",
        "tensorParallelSize",
        *_FRAMEWORKS,
    }
)
_MODEL_CONTAINER = "kserve-container"
_MODEL_ONLY_FIELDS = frozenset(
    {"modelFormat", "runtime", "runtimeVersion", "protocolVersion", "storageUri", "storage"}
)
_FAILED_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})


def _pod_template(component: Obj) -> dict[str, Any]:
    """The PodTemplateSpec KServe would build for a predictor/transformer/explainer (or workerSpec)."""
    spec = {k: copy.deepcopy(v) for k, v in component.items() if k not in _EXTENSION_FIELDS}
    containers = list(spec.get("containers") or [])
    framework = next((component[f] for f in _FRAMEWORKS if isinstance(component.get(f), dict)), None)
    if framework is not None:
        model = {k: copy.deepcopy(v) for k, v in framework.items() if k not in _MODEL_ONLY_FIELDS}
        model.setdefault("name", _MODEL_CONTAINER)
        containers = [model, *(c for c in containers if c.get("name") != model["name"])]
    spec["containers"] = containers
    metadata = {k: dict(component[k]) for k in ("labels", "annotations") if component.get(k)}
    return {"metadata": metadata, "spec": spec}


class InferenceServiceInterpreter(BaseInterpreter):
    """InferenceService (serving.kserve.io/v1beta1)."""

    group = "serving.kserve.io"
    kind = "InferenceService"
    versions = frozenset({"v1beta1"})
    divisible = True
    replica_path = ".spec.predictor.minReplicas"
    status_fields = ("conditions", "modelStatus", "url", "observedGeneration")
    condition_types = None

    def _predictor_replicas(self, obj: Obj) -> int:
        value = ((obj.get("spec") or {}).get("predictor") or {}).get("minReplicas")
        return self.default_replicas if value is None else int(value)

    def replicas(self, obj: Obj) -> int | None:
        """The predictor's ``minReplicas`` (default 1); None when it scales to zero."""
        return self._predictor_replicas(obj) or None

    def components(self, obj: Obj) -> list[Component]:
        """Predictor (and its multi-node workers), transformer, explainer."""
        spec = obj.get("spec") or {}
        predictor = spec.get("predictor") or {}
        replicas = self._predictor_replicas(obj)
        out = [component_from_template("predictor", replicas, _pod_template(predictor), per_replica=1)]
        worker = predictor.get("workerSpec")
        if isinstance(worker, dict):
            per = int(worker.get("pipelineParallelSize") or 2) - 1
            if per > 0:
                out.append(
                    component_from_template(
                        "predictor-worker", replicas * per, _pod_template(worker), per_replica=per
                    )
                )
        for role in ("transformer", "explainer"):
            if isinstance(spec.get(role), dict):
                part = spec[role]
                count = 1 if part.get("minReplicas") is None else int(part["minReplicas"])
                out.append(component_from_template(role, count, _pod_template(part)))
        return out

    def revise_replicas(self, obj: Obj, replicas: int) -> dict[str, Any]:
        """Set the predictor's ``minReplicas`` and scale ``maxReplicas`` proportionally."""
        current = self.replicas(obj)
        if current is None:
            raise ValueError("an InferenceService that scales to zero is not divisible")
        out = super().revise_replicas(obj, replicas)
        predictor = out["spec"]["predictor"]
        if predictor.get("maxReplicas") is not None:
            predictor["maxReplicas"] = max(
                replicas, math.ceil(int(predictor["maxReplicas"]) * replicas / current)
            )
        return out

    def health(self, member_obj: Obj) -> Health:
        """Healthy when Ready; Unhealthy when the model failed to load or the spec is invalid."""
        status = member_obj.get("status")
        if not (status or {}).get("conditions"):
            return Health.UNKNOWN
        transition = ((status or {}).get("modelStatus") or {}).get("transitionStatus")
        if transition in _FAILED_TRANSITIONS:
            return Health.UNHEALTHY
        if st.condition_true(status, "Ready"):
            return Health.HEALTHY
        return Health.PROGRESSING
