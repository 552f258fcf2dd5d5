"""Kopf entry point: thin handlers that hand hub events to :class:`~flotilla.controllers.runtime.Runtime`.

Run with ``kopf run -m flotilla.operator -A --standalone`` (or ``python -m flotilla``) against the
hub named by ``KUBECONFIG`` (or in-cluster credentials).

Settings (environment):

* ``FLOTILLA_METRICS_PORT`` (default 8080; 0 disables) - Prometheus ``/metrics`` on 127.0.0.1
  unless ``FLOTILLA_METRICS_ADDR`` says otherwise;
* ``FLOTILLA_HOLD_BACK`` (default ``true``) - suspend batch templates on the hub, for hubs that
  run workload controllers;
* ``FLOTILLA_STATUS_INTERVAL`` (default 5 s) - member status collection and drift repair;
* ``FLOTILLA_MEMBER_PROBE_INTERVAL`` (default 10 s) - member health probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf

from flotilla import API_GROUP, API_VERSION, __version__, kube, metrics
from flotilla.api import GROUP_VERSION, ignored_field_message, ignored_fields_in
from flotilla.controllers.custom_kinds import CustomKindWatch
from flotilla.controllers.matching import policy_from_body
from flotilla.controllers.members import MemberController
from flotilla.controllers.runtime import Runtime
from flotilla.interpreter import InterpreterRegistry
from flotilla.scheduler import SchedulerCache

STATUS_INTERVAL = float(os.environ.get("FLOTILLA_STATUS_INTERVAL", "5"))
MEMBER_INTERVAL = float(os.environ.get("FLOTILLA_MEMBER_STATUS_INTERVAL", "5"))

# Workload kinds with a built-in interpreter, watched on the hub as templates.
TEMPLATE_RESOURCES = (
    ("apps", "v1", "deployments", "Deployment"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("batch", "v1", "jobs", "Job"),
    ("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet"),
    ("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"),
    ("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets", "LeaderWorkerSet"),
    ("ray.io", "v1", "rayjobs", "RayJob"),
)


class _State:
    runtime: Runtime | None = None
    members: MemberController | None = None
    requeue: asyncio.Task[None] | None = None
    custom_watches: dict[tuple[str, str], CustomKindWatch] = {}


STATE = _State()


def runtime() -> Runtime:
    if STATE.runtime is None:
        raise kopf.TemporaryError("Flotilla is still starting", delay=1)
    return STATE.runtime


def members() -> MemberController:
    if STATE.members is None:
        raise kopf.TemporaryError("Flotilla is still starting", delay=1)
    return STATE.members


def _emit(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    with contextlib.suppress(Exception):  # events are best effort; never fail a handler for one
        kopf.event(cast(Any, dict(obj)), type=type_, reason=reason, message=message[:1024])


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # Read KUBECONFIG when the operator starts (the kubernetes client froze its default at import).
    if os.environ.get("KUBECONFIG"):
        return kopf.login_with_kubeconfig(**kwargs)
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


def _hub_client() -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    path = os.environ.get("KUBECONFIG")
    if path:
        config.load_kube_config(config_file=path, client_configuration=cfg)
    else:
        config.load_incluster_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = 32
    return client.ApiClient(cfg)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Only warnings and errors of Kopf's own log become Events: at INFO every handler and timer
    # run would post one, which floods the hub under load. Flotilla posts its own decisions.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.queueing.worker_limit = 64
    metrics.BUILD_INFO.info({"version": __version__})
    port = int(os.environ.get("FLOTILLA_METRICS_PORT", "8080"))
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr=os.environ.get("FLOTILLA_METRICS_ADDR", "127.0.0.1"))
    # Client calls run in threads: size the pool for many concurrent member/hub round trips
    # (the default is min(32, cores + 4), 6 on a 2-core machine).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=int(os.environ.get("FLOTILLA_IO_THREADS", "48")))
    )
    hub = await asyncio.to_thread(_hub_client)
    lock = threading.RLock()
    cache = SchedulerCache()
    rt = Runtime(
        hub=hub,
        cache=cache,
        lock=lock,
        registry=InterpreterRegistry(),
        hold_back=os.environ.get("FLOTILLA_HOLD_BACK", "true").lower() != "false",
        emit_event=_emit,
        loop=asyncio.get_running_loop(),
    )
    member_ctl = MemberController(hub=hub, cache=cache, lock=lock, on_change=rt.notify_capacity_changed)
    rt.member_api = member_ctl.api
    STATE.runtime, STATE.members = rt, member_ctl
    await _preload(rt, logger)
    STATE.requeue = asyncio.create_task(rt.requeue_loop())
    logger.info("Flotilla %s started", __version__)


async def _preload(rt: Runtime, logger: kopf.Logger) -> None:
    """Load policies, PodGroups and customizations before any template event is handled.

    Kopf watches kinds concurrently: without this, a template seen right after a restart could
    find no policy yet and have its binding (and its member copies) removed, then re-created."""
    for kind in ("PropagationPolicy", "ClusterPropagationPolicy", "PodGroup", "InterpreterCustomization"):
        try:
            items = await asyncio.to_thread(kube.list_objects, rt.hub, GROUP_VERSION, kind)
        except LookupError:
            continue  # CRD not installed yet: its events will fill the gap
        for body in items:
            body.setdefault("kind", kind)
            body.setdefault("apiVersion", GROUP_VERSION)
            if kind == "PodGroup":
                rt.pod_groups[(body["metadata"].get("namespace") or "", body["metadata"]["name"])] = body
            elif kind == "InterpreterCustomization":
                with contextlib.suppress(ValueError):  # reported as an Event by its handler
                    rt.registry.register_customization(dict(body["spec"]))
            else:
                policy = policy_from_body(body)
                rt.policies[policy.key] = policy
    logger.info("preloaded %d policies and %d PodGroups", len(rt.policies), len(rt.pod_groups))


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if STATE.requeue is not None:
        STATE.requeue.cancel()
    for watch in STATE.custom_watches.values():
        await asyncio.to_thread(watch.stop)
    STATE.custom_watches.clear()
    if STATE.members is not None:
        await asyncio.to_thread(STATE.members.stop_all)
    STATE.runtime = STATE.members = STATE.requeue = None


# ------------------------------------------------------------------ templates
def _register_template_handlers() -> None:
    for group, version, plural, _kind in TEMPLATE_RESOURCES:

        @kopf.on.event(group, version, plural, id=f"template-{plural}")
        async def on_template(type: str | None, body: kopf.Body, **_: Any) -> None:
            await runtime().on_template(type, body)


_register_template_handlers()


# ------------------------------------------------------------------- policies
@kopf.on.event(API_GROUP, API_VERSION, "propagationpolicies")
@kopf.on.event(API_GROUP, API_VERSION, "clusterpropagationpolicies")
async def on_policy(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type in (None, "ADDED", "MODIFIED"):
        for path in ignored_fields_in(dict(body)):
            _emit(body, "Warning", "IgnoredField", ignored_field_message(path))
    await runtime().on_policy(type, body)


@kopf.on.event(API_GROUP, API_VERSION, "podgroups")
async def on_pod_group(type: str | None, body: kopf.Body, **_: Any) -> None:
    await runtime().on_pod_group(type, body)


@kopf.on.event(API_GROUP, API_VERSION, "interpretercustomizations")
async def on_customization(type: str | None, body: kopf.Body, **_: Any) -> None:
    rt = runtime()
    target = (body.get("spec") or {}).get("target") or {}
    key = (str(target.get("apiVersion", "")), str(target.get("kind", "")))
    if type == "DELETED":
        rt.registry.unregister(*key)
        watch = STATE.custom_watches.pop(key, None)
        if watch is not None:
            await asyncio.to_thread(watch.stop)
        return
    try:
        rt.registry.register_customization(dict(body["spec"]))
    except ValueError as exc:
        _emit(body, "Warning", "InvalidCustomization", str(exc))
        return
    builtin = any((f"{g}/{v}", k) == key for g, v, _p, k in TEMPLATE_RESOURCES)
    if not builtin and key not in STATE.custom_watches and rt.loop is not None:
        watch = CustomKindWatch(rt.hub.configuration, key[0], key[1], rt.on_template, rt.loop, rt.hub)
        STATE.custom_watches[key] = watch
        watch.start()


# ------------------------------------------------------------------- bindings
@kopf.on.event(API_GROUP, API_VERSION, "resourcebindings")
async def on_binding(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type == "DELETED":
        return
    await runtime().on_binding(body)


@kopf.on.delete(API_GROUP, API_VERSION, "resourcebindings")
async def on_binding_deleted(body: kopf.Body, **_: Any) -> None:
    try:
        await runtime().on_binding_deleted(body)
    except RuntimeError as exc:
        raise kopf.TemporaryError(str(exc), delay=10) from exc


@kopf.timer(
    API_GROUP,
    API_VERSION,
    "resourcebindings",
    interval=STATUS_INTERVAL,
    initial_delay=STATUS_INTERVAL,
    idle=1,
)
async def collect_binding_status(body: kopf.Body, **_: Any) -> None:
    await runtime().collect_status(body)


# ------------------------------------------------------------- member clusters
@kopf.on.resume(API_GROUP, API_VERSION, "memberclusters")
@kopf.on.create(API_GROUP, API_VERSION, "memberclusters")
@kopf.on.update(API_GROUP, API_VERSION, "memberclusters", field="spec")
async def on_member(name: str, body: kopf.Body, **_: Any) -> None:
    await members().reconcile(name, body)


@kopf.timer(API_GROUP, API_VERSION, "memberclusters", interval=MEMBER_INTERVAL)
async def member_status(name: str, body: kopf.Body, **_: Any) -> None:
    await members().reconcile(name, body)


@kopf.on.delete(API_GROUP, API_VERSION, "memberclusters")
async def on_member_deleted(name: str, **_: Any) -> None:
    await asyncio.to_thread(members().unregister, name)
