"""Workload interpreters: what Flotilla needs to know about each workload kind, as pure functions.

Start with :class:`InterpreterRegistry` (``get(api_version, kind)``), the :class:`Interpreter`
interface, :func:`prepare_for_member` and :func:`dependencies`.
"""

from flotilla.interpreter.base import BaseInterpreter, Component, Health, Interpreter, total_requests
from flotilla.interpreter.declarative import DeclarativeInterpreter
from flotilla.interpreter.deployment import DeploymentInterpreter
from flotilla.interpreter.inferenceservice import InferenceServiceInterpreter
from flotilla.interpreter.job import JobInterpreter
from flotilla.interpreter.jobset import JobSetInterpreter
from flotilla.interpreter.keys import (
    ANNOTATION_CLUSTER,
    ANNOTATION_RETAIN_REPLICAS,
    ANNOTATION_USER_SUSPENDED,
    LABEL_BINDING_NAME,
    LABEL_BINDING_NAMESPACE,
    LABEL_MANAGED_BY,
    MANAGED_BY_VALUE,
)
from flotilla.interpreter.leaderworkerset import LeaderWorkerSetInterpreter
from flotilla.interpreter.paths import PathError
from flotilla.interpreter.prepare import dependencies, ownership_labels, prepare_for_member, strip_hub_fields
from flotilla.interpreter.pytorchjob import PyTorchJobInterpreter
from flotilla.interpreter.rayjob import RayJobInterpreter
from flotilla.interpreter.registry import BUILTIN_INTERPRETERS, InterpreterRegistry
from flotilla.interpreter.statefulset import StatefulSetInterpreter

__all__ = [
    "ANNOTATION_CLUSTER",
    "ANNOTATION_RETAIN_REPLICAS",
    "ANNOTATION_USER_SUSPENDED",
    "BUILTIN_INTERPRETERS",
    "LABEL_BINDING_NAME",
    "LABEL_BINDING_NAMESPACE",
    "LABEL_MANAGED_BY",
    "MANAGED_BY_VALUE",
    "BaseInterpreter",
    "Component",
    "DeclarativeInterpreter",
    "DeploymentInterpreter",
    "Health",
    "InferenceServiceInterpreter",
    "Interpreter",
    "InterpreterRegistry",
    "JobInterpreter",
    "JobSetInterpreter",
    "LeaderWorkerSetInterpreter",
    "PathError",
    "PyTorchJobInterpreter",
    "RayJobInterpreter",
    "StatefulSetInterpreter",
    "dependencies",
    "ownership_labels",
    "prepare_for_member",
    "strip_hub_fields",
    "total_requests",
]
