"""MemberConnection: one member's live inventory (list+watch of Nodes and Pods) and health probe.

Threads per member (daemon, named ``flotilla-inventory-<member>-<role>``):

* ``probe`` - connects (``/version`` + API discovery), then probes ``GET /readyz`` (each
  request bounded by ``probe_timeout``) every ``probe_interval`` seconds. A probe fails when
  the API server does not answer (``Unreachable``), answers anything but ``ok``
  (``APIServerNotReady``) or rejects the credentials (``Unauthorized``), or when the member
  has nodes and none is Ready (``NoReadyNodes``). Results feed a
  :class:`~flotilla.inventory.health.HealthTracker`: the member turns NotReady after
  ``failure_threshold`` consecutive failures and Ready again after ``success_threshold``
  consecutive successes (the first success of a member never seen decides at once). Until
  then a member never reached reports the latest failure's reason. API discovery is
  repeated every ``discovery_interval`` and after each recovery.
* ``nodes`` / ``pods`` - list (paginated), then watch from the list's resourceVersion with
  bookmarks; on ``410 Gone`` (or repeated watch failures) they list again. Errors back off
  exponentially (``0.5 s`` doubling up to ``max_backoff``). There is no periodic re-list.

Only pods bound to a node and not Succeeded/Failed are watched (a field selector; the
converter checks again). Readiness is mirrored into the cache's ClusterInfo, so the scheduler
filters NotReady members. All cache access goes through the shared lock (see
:class:`~flotilla.inventory.store.MemberInventory`); ``on_change`` is called *without* any lock
held, from the member's threads.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes.client import ApiException

from flotilla import metrics
from flotilla.inventory.client import InventoryError, MemberClient, is_connection_error, load_kubeconfig
from flotilla.inventory.discovery import ApiResourceEntry, enablement_status, gvk_set
from flotilla.inventory.health import Health, HealthStatus, HealthTracker, ProbeResult, Reason
from flotilla.inventory.store import Change, ClusterMeta, MemberInventory
from flotilla.scheduler.cache import SchedulerCache

__all__ = [
    "DEFAULT_FAILURE_THRESHOLD",
    "DEFAULT_PROBE_INTERVAL",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_SUCCESS_THRESHOLD",
    "MemberConnection",
    "MemberState",
    "Reason",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PROBE_INTERVAL = 2.0
DEFAULT_PROBE_TIMEOUT = 3.0
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_SUCCESS_THRESHOLD = 2
WATCH_SECONDS = 240
"""Server-side ``timeoutSeconds`` of one watch request (then it is resumed from its resourceVersion)."""
LIST_PAGE = 500
POD_FIELD_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"


@dataclass(frozen=True)
class MemberState:
    """A point-in-time view of one member for its MemberCluster status."""

    name: str
    ready: bool
    reason: str
    message: str
    kubernetes_version: str | None = None
    api_enablements: list[dict[str, Any]] = field(default_factory=list)
    """Karmada shape: ``[{groupVersion, resources: [{name, kind}]}]``; empty until discovered."""
    resource_summary: dict[str, Any] | None = None
    node_summary: dict[str, int] | None = None
    last_probe_time: datetime | None = None
    last_transition_time: datetime | None = None
    health: Health = Health.UNKNOWN
    """The health tracker's verdict (``ready`` also needs the initial lists)."""
    health_since: datetime | None = None
    """When ``health`` last changed."""

    def ready_condition(self) -> dict[str, Any]:
        """The ``Ready`` condition (metav1.Condition fields except observedGeneration)."""
        when = self.last_transition_time or datetime.now(UTC)
        return {
            "type": "Ready",
            "status": "True" if self.ready else "False",
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def status_fields(self) -> dict[str, Any]:
        """MemberCluster ``status`` fields other than conditions (absent values omitted)."""
        out: dict[str, Any] = {}
        if self.kubernetes_version:
            out["kubernetesVersion"] = self.kubernetes_version
        if self.api_enablements:
            out["apiEnablements"] = self.api_enablements
        if self.resource_summary is not None:
            out["resourceSummary"] = self.resource_summary
        if self.node_summary is not None:
            out["nodeSummary"] = self.node_summary
        return out


def _classify(exc: BaseException) -> tuple[str, str]:
    """``(reason, message)`` for a failed request."""
    if isinstance(exc, InventoryError):
        return exc.reason, exc.message
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        return Reason.UNAUTHORIZED, f"the member rejected Flotilla's credentials (HTTP {exc.status})"
    if is_connection_error(exc):
        detail = str(getattr(exc, "reason", None) or exc)
        return Reason.UNREACHABLE, f"cannot connect to the member API server: {detail}"[:1024]
    if isinstance(exc, ApiException):
        detail = f"the member API server answered HTTP {exc.status}: {exc.reason}"
        return Reason.API_SERVER_NOT_READY, detail[:1024]
    return Reason.UNHEALTHY, f"{type(exc).__name__}: {exc}"[:1024]


class _Backoff:
    """Exponential backoff with jitter, reset on success."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.delay = 0.5

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.delay = 0.5


class _Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


class MemberConnection:
    """Connects to one member and keeps its inventory in the shared cache. See the module docs.

    ``start()`` raises :class:`InventoryError` (reason ``KubeconfigInvalid``) for a kubeconfig
    that cannot be used - after recording that state and putting the member into the cache as
    NotReady; every other failure is reported through :meth:`state` and ``on_change``.
    """

    def __init__(
        self,
        name: str,
        kubeconfig_text: str,
        cache: SchedulerCache,
        *,
        lock: threading.RLock | None = None,
        meta: ClusterMeta | None = None,
        on_change: Callable[[str, Change], None] | None = None,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        success_threshold: int = DEFAULT_SUCCESS_THRESHOLD,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        discovery_interval: float = 60.0,
        max_backoff: float = 30.0,
        inventory: MemberInventory | None = None,
    ) -> None:
        self.name = name
        self.kubeconfig_text = kubeconfig_text
        self.lock = lock or threading.RLock()
        self.inventory = inventory or MemberInventory(name, cache, self.lock, meta)
        if meta is not None:
            self.inventory.meta = meta
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.failure_threshold = max(1, failure_threshold)
        self.success_threshold = max(1, success_threshold)
        self.discovery_interval = discovery_interval
        self.max_backoff = max_backoff
        self._on_change = on_change
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: MemberClient | None = None
        # State below is guarded by self.lock.
        self._ready = self.inventory.ready
        self._reason = Reason.READY if self._ready else Reason.CONNECTING
        self._message = "" if self._ready else "connecting to the member API server"
        self._version: str | None = None
        self._apis: list[ApiResourceEntry] = []
        self._last_probe: datetime | None = None
        self._last_transition = datetime.now(UTC)
        self._connected = False
        self._synced: set[str] = set()
        # A connection that takes over a Ready member (a changed kubeconfig) starts from Ready.
        self._tracker = HealthTracker(
            self.failure_threshold,
            self.success_threshold,
            initial=Health.READY if self._ready else Health.UNKNOWN,
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Parse the kubeconfig, publish the member into the cache and start the probe thread."""
        self.inventory.publish()
        try:
            cfg = load_kubeconfig(self.kubeconfig_text)
        except InventoryError as exc:
            self._set_state(False, exc.reason, exc.message)
            raise
        self._client = MemberClient(cfg)
        self._spawn("probe", self._probe_loop)

    def stop(self, *, remove: bool = True, timeout: float = 10.0) -> None:
        """Stop every thread (aborting open requests); with ``remove``, drop the member from the cache.

        Without ``remove`` the cache entry and :attr:`inventory` stay as they are, for a new
        connection to take over (a changed kubeconfig). Must not be called while holding the
        shared lock (the threads may be waiting for it).
        """
        self._stop.set()
        if self._client is not None:
            self._client.abort()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
            if thread.is_alive():
                log.warning("member %s: thread %s did not stop in time", self.name, thread.name)
        if self._client is not None:
            self._client.close()
        with self.lock:
            self._ready, self._reason, self._message = False, Reason.STOPPED, "inventory stopped"
        if remove:
            self.inventory.remove()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _spawn(self, role: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except Exception:  # a bug must not kill the operator; leave a trace and stop this role
                log.exception("member %s: %s thread failed", self.name, role)

        thread = threading.Thread(target=run, name=f"flotilla-inventory-{self.name}-{role}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopping."""
        return self._stop.wait(seconds)

    # -- state -----------------------------------------------------------------------------------
    def _notify(self, change: Change) -> None:
        if change and self._on_change is not None and not self._stop.is_set():
            try:
                self._on_change(self.name, change)
            except Exception:
                log.exception("member %s: on_change callback failed", self.name)

    def _set_state(self, ready: bool, reason: str, message: str) -> None:
        with self.lock:
            if self._stop.is_set():
                return
            transition = ready != self._ready
            same = not transition and reason == self._reason and message == self._message
            self._ready, self._reason, self._message = ready, reason, message
            if transition:
                self._last_transition = datetime.now(UTC)
        change = self.inventory.set_cluster(ready=ready)
        if not same:
            if transition:
                log.info("member %s: ready=%s (%s) %s", self.name, ready, reason, message)
            self._notify(change | Change.CHANGED)

    def _refresh_ready(self) -> None:
        """Ready when the tracker says Ready and both initial lists are in."""
        with self.lock:
            health = self._tracker.status()
            synced = self._synced >= {"nodes", "pods"}
        if health.state is Health.READY and synced:
            self._set_state(
                True, Reason.READY, "the member API server is healthy and its inventory is synced"
            )
        elif health.state is Health.READY:
            if self._connected:
                self._set_state(False, Reason.SYNCING, "listing the member's nodes and pods")
        else:
            self._set_state(False, health.reason, health.message)

    def _observe(self, result: ProbeResult) -> HealthStatus:
        """Feed one probe result to the tracker and publish what it decides."""
        with self.lock:
            status = self._tracker.observe(result)
            self._last_probe = datetime.now(UTC)
        if not result.ok:
            metrics.CLUSTER_PROBE_FAILURES.labels(cluster=self.name, reason=result.reason).inc()
        if status.transitioned:
            log.info("member %s: %s (%s) %s", self.name, status.state, status.reason, status.message)
        self._refresh_ready()
        return status

    def health(self) -> HealthStatus:
        """The health tracker's current verdict (cheap)."""
        with self.lock:
            return self._tracker.status()

    def readiness(self) -> tuple[bool, str, str, datetime]:
        """``(ready, reason, message, last transition)`` of the Ready condition (cheap)."""
        with self.lock:
            return self._ready, self._reason, self._message, self._last_transition

    def is_ready(self) -> bool:
        """Whether the member is Ready (cheap: no summaries are computed)."""
        with self.lock:
            return self._ready

    def state(self) -> MemberState:
        """The member's current state and inventory summaries."""
        with self.lock:
            synced = bool(self._synced)
            resource, nodes = self.inventory.summaries() if synced else (None, None)
            return MemberState(
                name=self.name,
                ready=self._ready,
                reason=self._reason,
                message=self._message,
                kubernetes_version=self._version,
                api_enablements=enablement_status(self._apis),
                resource_summary=resource,
                node_summary=nodes,
                last_probe_time=self._last_probe,
                last_transition_time=self._last_transition,
                health=self._tracker.state,
                health_since=datetime.fromtimestamp(self._tracker.since, UTC),
            )

    # -- probe -----------------------------------------------------------------------------------
    def _discover(self) -> None:
        assert self._client is not None
        version = self._client.version()
        apis = self._client.discover()
        with self.lock:
            self._version = version
            self._apis = apis
        self._notify(self.inventory.set_cluster(api_enablements=gvk_set(apis)))

    def _probe(self) -> ProbeResult:
        """One probe: ``/readyz``, then (once nodes are listed) whether any node is Ready."""
        assert self._client is not None
        try:
            self._client.readyz(timeout=self.probe_timeout)
        except Exception as exc:
            return ProbeResult.failure(*_classify(exc))
        with self.lock:
            nodes_listed = "nodes" in self._synced
        if nodes_listed:
            total, ready = self.inventory.node_readiness()
            if total and not ready:
                return ProbeResult.failure(
                    Reason.NO_READY_NODES, f"none of the member's {total} nodes is Ready"
                )
        return ProbeResult.success()

    def _probe_loop(self) -> None:
        assert self._client is not None
        backoff = _Backoff(min(self.max_backoff, self.probe_interval))
        while not self._stop.is_set():  # connect: version + discovery
            try:
                self._discover()
                break
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._observe(ProbeResult.failure(*_classify(exc)))
                if self._wait(backoff.next()):
                    return
        with self.lock:
            self._connected = True
        last_discovery = time.monotonic()
        self._observe(ProbeResult.success())
        self._spawn("nodes", lambda: self._list_watch("nodes", "/api/v1/nodes", [], self.inventory))
        self._spawn(
            "pods",
            lambda: self._list_watch(
                "pods", "/api/v1/pods", [("fieldSelector", POD_FIELD_SELECTOR)], self.inventory
            ),
        )
        while not self._wait(self.probe_interval):
            result = self._probe()
            if self._stop.is_set():
                return
            status = self._observe(result)
            recovered = status.transitioned and status.state is Health.READY
            if result.ok and (recovered or time.monotonic() - last_discovery >= self.discovery_interval):
                try:
                    self._discover()
                    last_discovery = time.monotonic()
                except Exception as exc:
                    log.debug("member %s: discovery failed: %s", self.name, exc)

    # -- list + watch ----------------------------------------------------------------------------
    def _list(
        self, path: str, query: list[tuple[str, str]], keep: Callable[[Any], T | None]
    ) -> tuple[list[T], str]:
        """``keep(item)`` of every item of a collection (paginated: raw pages are not retained),
        skipping None, and the list's resourceVersion."""
        assert self._client is not None
        kept: list[T] = []
        token = ""
        while True:
            page_query = [*query, ("limit", str(LIST_PAGE))]
            if token:
                page_query.append(("continue", token))
            page = self._client.get(path, page_query, timeout=60.0)
            kept += [k for k in map(keep, page.get("items") or ()) if k is not None]
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return kept, str(meta.get("resourceVersion") or "")

    def _events(self, path: str, query: list[tuple[str, str]], rv: str) -> Iterator[Mapping[str, Any]]:
        assert self._client is not None
        watch_query = [
            *query,
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(WATCH_SECONDS)),
        ]
        for event in self._client.watch(path, watch_query, timeout=WATCH_SECONDS + 30):
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                if status.get("code") == 410:
                    raise _Gone(status.get("message", "resourceVersion too old"))
                raise ApiException(status=status.get("code") or 500, reason=status.get("message"))
            yield event

    def _list_watch(
        self, role: str, path: str, query: list[tuple[str, str]], inventory: MemberInventory
    ) -> None:
        apply = inventory.apply_node if role == "nodes" else inventory.apply_pod
        backoff = _Backoff(self.max_backoff)
        rv = ""
        failures = 0
        while not self._stop.is_set():
            try:
                if not rv:
                    if role == "nodes":
                        nodes, rv = self._list(path, query, inventory.node_entry)
                        change = inventory.replace_node_infos(nodes)
                    else:
                        pods, rv = self._list(path, query, inventory.pod_entry)
                        change = inventory.replace_pod_infos(pods)
                    with self.lock:
                        first = role not in self._synced
                        self._synced.add(role)
                    self._notify(change | (Change.CHANGED if first else Change.NONE))
                    if first:
                        self._refresh_ready()
                for event in self._events(path, query, rv):
                    obj = event.get("object") or {}
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if event.get("type") != "BOOKMARK":
                        self._notify(apply(str(event.get("type")), obj))
                    backoff.reset()
                    failures = 0
            except _Gone:
                log.info("member %s: %s watch expired, listing again", self.name, role)
                rv = ""
            except Exception as exc:
                if self._stop.is_set():
                    return
                failures += 1
                if failures >= 3:
                    rv = ""  # e.g. the member's etcd was replaced: start over from a list
                log.debug("member %s: %s list/watch failed: %s", self.name, role, exc)
                if self._wait(backoff.next()):
                    return
