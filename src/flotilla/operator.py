"""Kopf entry point: thin handlers that update the hub cache and enqueue keys for the controllers.

Run with ``kopf run -m flotilla.operator -A --standalone`` (or ``python -m flotilla``) against the
hub named by ``KUBECONFIG`` (or in-cluster credentials). The controllers and their work queues
live in :mod:`flotilla.controllers`; Kopf only delivers watch events.

Settings (environment):

* ``FLOTILLA_METRICS_PORT`` (default 8080; 0 disables) - Prometheus ``/metrics`` on 127.0.0.1
  unless ``FLOTILLA_METRICS_ADDR`` says otherwise;
* ``FLOTILLA_HUB_HOLD`` (default ``true``; needs the webhook) - hold propagated workloads on a hub
  that runs controllers: ``spec.managedBy`` on Jobs and JobSets, a scheduling gate on the pods of
  every other kind, both at admission (:mod:`flotilla.hubhold`, docs/hub-hold.md);
* ``FLOTILLA_HOLD_BACK`` (default: ``true`` only when the hub hold is off) - suspend batch templates
  on the hub after they were created: a fallback for hubs without the webhook, which races the
  hub's controllers (they may start pods before the suspend lands);
* ``FLOTILLA_MEMBER_STATUS_INTERVAL`` (default 5 s) - MemberCluster status refresh (inventory
  figures; health changes are written as soon as they happen);
* ``FLOTILLA_MEMBER_PROBE_INTERVAL`` (default 2 s) and ``FLOTILLA_MEMBER_PROBE_TIMEOUT``
  (default 3 s) - how often each member's ``/readyz`` is probed, and how long one probe may take;
* ``FLOTILLA_MEMBER_FAILURE_THRESHOLD`` (default 3) / ``FLOTILLA_MEMBER_SUCCESS_THRESHOLD``
  (default 2) - consecutive failed / successful probes before a member turns NotReady / Ready;
* ``FLOTILLA_AUTO_TAINTS`` (default ``true``) - taint NotReady members
  (``cluster.flotilla.dev/not-ready`` or ``.../unreachable``: NoSchedule at once, NoExecute
  after ``FLOTILLA_MEMBER_NOEXECUTE_GRACE`` seconds, default 30, negative for never); see
  :mod:`flotilla.controllers.members`;
* ``FLOTILLA_FAILOVER`` (default ``true``) - move workloads off members tainted NoExecute;
  ``FLOTILLA_FAILOVER_EVICTION_RATE`` (default 10 per second) and
  ``FLOTILLA_FAILOVER_EVICTION_BURST`` (default 20) pace evictions fleet-wide;
  ``FLOTILLA_FAILOVER_PURGE_MODE`` (default ``Gracefully``) for policies without
  ``failover.cluster.purgeMode``; ``FLOTILLA_GRACEFUL_EVICTION_TIMEOUT`` (default 600 s) bounds a
  graceful eviction; ``FLOTILLA_FAILOVER_RETRY`` (default 30 s) - see
  :mod:`flotilla.controllers.failover`;
* ``FLOTILLA_KOPF_LOG_LEVEL`` (default ``WARNING``) - level of Kopf's per-handler log lines;
* ``FLOTILLA_WORKERS`` (default 16) - workers per controller queue (status has two);
* ``FLOTILLA_FLEET_SYNC_TIMEOUT`` (default 30 s) - after a start, scheduling waits until every
  member's first verdict is in (Ready with its inventory listed, or a known failure), at most
  this long;
* ``FLOTILLA_EXPLANATION_CLUSTERS`` (default 20) - clusters a binding's ``status.explanation``
  lists at most (see :func:`flotilla.controllers.scheduling.explanation_dict`);
* ``FLOTILLA_GC_THRESHOLD`` (default ``50000,20,10``; ``python`` keeps the interpreter's
  ``700,10,10``) - the garbage collector's thresholds, set at start (see :mod:`flotilla.gcsettings`);
* ``FLOTILLA_LEADER_ELECT`` (default ``false``; the Helm chart sets ``true``) - leader election
  with a coordination.k8s.io Lease (see :class:`flotilla.leader.ElectionSettings`): one active
  replica, the others keep their caches warm and take over when its Lease lapses;
* ``FLOTILLA_WEBHOOK_*`` (see :class:`flotilla.admission.settings.WebhookSettings`; off unless
  ``FLOTILLA_WEBHOOK_ENABLED``, which the chart and the rig set) - the FederatedResourceQuota
  admission webhook every replica serves; ``FLOTILLA_QUOTA_CHARGE_TTL`` (default 30 s) - how long
  an admission charge counts before the quota controller has seen its workload;
* ``FLOTILLA_FRAGMENTATION_LEARN`` (default ``true``), ``FLOTILLA_FRAGMENTATION_HALF_LIFE``
  (default 5000 pods), ``FLOTILLA_FRAGMENTATION_PRIOR_WEIGHT`` (default 10 pods),
  ``FLOTILLA_FRAGMENTATION_REQUANTIZE`` (default 0.05) and ``FLOTILLA_FRAGMENTATION_INTERVAL``
  (default 1000 workloads) - how the scheduler's GPUFragmentation plugin learns its target
  workload (see :mod:`flotilla.controllers.profile`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf

from flotilla import API_GROUP, API_VERSION, __version__, kube, metrics
from flotilla.admission.settings import WebhookSettings
from flotilla.api import GROUP_VERSION, PODGROUP_FIELDS, ignored_field_message, ignored_fields_in
from flotilla.controllers.client import KubeClient
from flotilla.controllers.hub_watch import HubWatch
from flotilla.controllers.members import MemberController
from flotilla.controllers.profile import default_scheduler, learning_from_env
from flotilla.controllers.runtime import FLEET_SYNC_TIMEOUT, Runtime
from flotilla.gcsettings import apply_threshold
from flotilla.hubhold import HubHold
from flotilla.interpreter import InterpreterRegistry
from flotilla.leader import ElectionSettings, env_bool, kube_lease_client
from flotilla.quota.webhook import QuotaWebhook
from flotilla.scheduler import SchedulerCache

log = logging.getLogger("flotilla")
MEMBER_INTERVAL = float(os.environ.get("FLOTILLA_MEMBER_STATUS_INTERVAL", "5"))

# Workload kinds with a built-in interpreter, watched on the hub as templates.
TEMPLATE_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("batch/v1", "Job"),
    ("jobset.x-k8s.io/v1alpha2", "JobSet"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
    ("ray.io/v1", "RayJob"),
)


class _State:
    runtime: Runtime | None = None
    members: MemberController | None = None
    leader_task: asyncio.Task[None] | None = None
    hub_api: Any = None
    hub_watches: dict[tuple[str, str], HubWatch] = {}
    webhook: QuotaWebhook | None = None
    metrics_server: Any = None


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
    try:  # events are best effort; never fail a handler for one
        kopf.event(cast(Any, dict(obj)), type=type_, reason=reason, message=message[:1024])
    except LookupError:
        # Kopf's event queue exists only inside its handlers: the controllers' workers (a decision,
        # a failover) post their Events themselves.
        _post_event(obj, type_, reason, message)
    except Exception:
        log.debug("could not post a %s event", reason, exc_info=True)


def _post_event(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A core/v1 Event about ``obj`` on the hub, posted from a worker thread (fire and forget)."""
    api = STATE.hub_api
    if api is None:
        return
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "flotilla"},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }

    def post() -> None:
        try:
            kube.request(api, "POST", f"/api/v1/namespaces/{namespace}/events", body, "application/json")
        except Exception as exc:
            log.debug("could not post a %s event: %s", reason, exc)

    try:
        asyncio.get_running_loop().run_in_executor(None, post)
    except RuntimeError:  # not on the event loop
        threading.Thread(target=post, name="flotilla-event", daemon=True).start()


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
    cfg.connection_pool_maxsize = 64
    return client.ApiClient(cfg)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, logger: kopf.Logger, **_: Any) -> None:
    if STATE.runtime is not None or STATE.members is not None or STATE.hub_watches:
        # An earlier start in this process (an operator restarted in a thread, as the e2e
        # tests do) was stopped before it finished and was not cleaned up: its watches would
        # keep delivering to its ended event loop, and this start would not open its own.
        logger.warning("releasing what an unfinished earlier start left behind")
        await _release()
    try:
        await _start(settings, logger)
    except BaseException:
        # Kopf runs no cleanup handler after a startup that did not finish (stopped while
        # starting, or a step failed): release here what was started.
        await _release()
        raise


async def _start(settings: kopf.OperatorSettings, logger: kopf.Logger) -> None:
    settings.persistence.finalizer = f"{API_GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=API_GROUP, key="last-handled-configuration"
    )
    # Only warnings and errors of Kopf's own log become Events: at INFO every handler run would
    # post one, which floods the hub under load. Flotilla posts its own decisions.
    settings.posting.level = logging.WARNING
    # Kopf logs every handler run at INFO (a line per member every few seconds from the status
    # timer): the operator's own log says what matters. FLOTILLA_KOPF_LOG_LEVEL=INFO brings it back.
    logging.getLogger("kopf.objects").setLevel(os.environ.get("FLOTILLA_KOPF_LOG_LEVEL", "WARNING").upper())
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.queueing.worker_limit = 64
    metrics.BUILD_INFO.info({"version": __version__})
    port = int(os.environ.get("FLOTILLA_METRICS_PORT", "8080"))
    if port and STATE.metrics_server is None:
        from prometheus_client import start_http_server

        server = start_http_server(port, addr=os.environ.get("FLOTILLA_METRICS_ADDR", "127.0.0.1"))[0]
        STATE.metrics_server = server
    # Client calls run in threads: size the pool for concurrent member/hub round trips (the
    # default is min(32, cores + 4), 6 on a 2-core machine). Every call has a timeout.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=int(os.environ.get("FLOTILLA_IO_THREADS", "64")))
    )
    webhook = WebhookSettings.from_env()
    learning = learning_from_env()  # a bad value is an error here, naming its variable
    logger.info("garbage-collector thresholds %s (FLOTILLA_GC_THRESHOLD)", apply_threshold())
    hub_api = await asyncio.to_thread(_hub_client)
    lock = threading.RLock()
    cache = SchedulerCache()
    loop = asyncio.get_running_loop()
    leading = threading.Event()

    def on_member_change(name: str) -> None:
        if STATE.runtime is not None:
            STATE.runtime.notify_capacity_changed(name)

    member_ctl = MemberController(
        hub=hub_api, cache=cache, lock=lock, on_change=on_member_change, active=leading.is_set
    )
    rt = Runtime(
        KubeClient(hub_api),
        cache,
        lock,
        loop,
        registry=InterpreterRegistry(),
        member_api=member_ctl.api,
        member_ready=member_ctl.ready,
        member_names=member_ctl.inventory.names,
        member_settled=member_ctl.settled,
        fleet_sync_timeout=float(os.environ.get("FLOTILLA_FLEET_SYNC_TIMEOUT", FLEET_SYNC_TIMEOUT)),
        emit_event=_emit,
        hold_back=env_bool(os.environ.get("FLOTILLA_HOLD_BACK"), not webhook.hub_hold_active),
        workers=int(os.environ.get("FLOTILLA_WORKERS", "16")),
        watch_kinds=TEMPLATE_KINDS,
        quota_enforced=webhook.enabled,
        scheduler=default_scheduler(learning),
    )
    STATE.runtime, STATE.members, STATE.hub_api = rt, member_ctl, hub_api
    await rt.preload()
    # Templates and bindings are watched by Flotilla's own threads (see hub_watch), after the
    # preload so that no template is handled before the policies and bindings are known.
    _watch(GROUP_VERSION, "ResourceBinding", rt.on_binding)
    _watch(GROUP_VERSION, "FederatedResourceQuota", rt.on_quota)
    for api_version, kind in TEMPLATE_KINDS:
        _watch(api_version, kind, rt.on_template, rt.on_templates_listed)

    async def started_leading() -> None:
        leading.set()
        metrics.LEADER.set(1)
        await rt.start()
        logger.info("Flotilla %s is the active operator", __version__)

    async def stopped_leading() -> None:
        leading.clear()
        metrics.LEADER.set(0)
        await rt.stop()
        logger.info("Flotilla stopped leading: controllers stopped, caches kept warm")

    if webhook.enabled:
        # Every replica serves the quota webhook (a standby's caches are as warm as the leader's).
        STATE.webhook = QuotaWebhook(
            webhook,
            hub_api,
            rt.registry,
            kinds=lambda: {*TEMPLATE_KINDS, *rt.watch_kinds},
            observed=rt.quota.observed,
            hold=HubHold(KubeClient(hub_api), rt.state, rt.registry, _emit)
            if webhook.hub_hold_active
            else None,
        )
        await STATE.webhook.start()
    election = ElectionSettings.from_env()
    if election.enabled:
        elector = election.elector(kube_lease_client(hub_api))
        STATE.leader_task = asyncio.create_task(elector.run(started_leading, stopped_leading))
    else:
        await started_leading()
    logger.info("Flotilla %s started", __version__)


def _watch(api_version: str, kind: str, on_event: Any, on_listed: Any = None) -> None:
    if (api_version, kind) in STATE.hub_watches or STATE.runtime is None:
        return
    watch = HubWatch(STATE.hub_api, api_version, kind, on_event, STATE.runtime.loop, on_listed)
    STATE.hub_watches[(api_version, kind)] = watch
    watch.start()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    await _release()


async def _release() -> None:
    """Stop everything a start began: leadership, controllers, webhook, watch threads, member
    connections, the metrics server. Parts bound to an event loop that has ended (a start
    left unfinished by an earlier run in this process) ended with it and are only dropped."""
    # Dropped first: a handler still running meanwhile (a customization opening a watch)
    # finds no runtime, so nothing is opened while the rest is released.
    rt, STATE.runtime = STATE.runtime, None
    current = rt is None or rt.loop is asyncio.get_running_loop()
    if STATE.leader_task is not None and current:
        STATE.leader_task.cancel()  # releases the Lease, so a standby takes over at once
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await STATE.leader_task
    if rt is not None and current:
        await rt.stop()
    if STATE.webhook is not None and current:
        await STATE.webhook.stop()
    STATE.webhook = None
    for watch in STATE.hub_watches.values():
        await asyncio.to_thread(watch.stop)
    STATE.hub_watches.clear()
    if STATE.members is not None:
        await asyncio.to_thread(STATE.members.stop_all)
    if STATE.metrics_server is not None:  # (an operator run in a thread, e.g. by tests, is restarted)
        await asyncio.to_thread(STATE.metrics_server.shutdown)
        STATE.metrics_server.server_close()
        STATE.metrics_server = None
    STATE.members = None
    STATE.leader_task = None


# ------------------------------------------------------------------- policies
@kopf.on.event(API_GROUP, API_VERSION, "propagationpolicies")
@kopf.on.event(API_GROUP, API_VERSION, "clusterpropagationpolicies")
async def on_policy(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type in (None, "ADDED", "MODIFIED"):
        for path in ignored_fields_in(dict(body)):
            _emit(body, "Warning", "IgnoredField", ignored_field_message(path))
    runtime().on_policy(type, body)


@kopf.on.event(API_GROUP, API_VERSION, "podgroups")
async def on_pod_group(type: str | None, body: kopf.Body, **_: Any) -> None:
    if type in (None, "ADDED", "MODIFIED"):
        for path in ignored_fields_in(dict(body), PODGROUP_FIELDS):
            _emit(body, "Warning", "IgnoredField", ignored_field_message(path, PODGROUP_FIELDS))
    runtime().on_pod_group(type, body)


@kopf.on.event(API_GROUP, API_VERSION, "interpretercustomizations")
async def on_customization(type: str | None, body: kopf.Body, **_: Any) -> None:
    rt = runtime()
    target = (body.get("spec") or {}).get("target") or {}
    key = (str(target.get("apiVersion", "")), str(target.get("kind", "")))
    if type == "DELETED":
        rt.registry.unregister(*key)
        if key not in TEMPLATE_KINDS:
            watch = STATE.hub_watches.pop(key, None)
            if watch is not None:
                await asyncio.to_thread(watch.stop)
        return
    try:
        rt.registry.register_customization(dict(body["spec"]))
    except ValueError as exc:
        _emit(body, "Warning", "InvalidCustomization", str(exc))
        return
    rt.watch_kinds.add(key)
    _watch(key[0], key[1], rt.on_template, rt.on_templates_listed)
    rt.rematch()
    if STATE.webhook is not None:  # applies of the new kind are checked against quota too
        await STATE.webhook.register()


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
