"""MemberCluster controller: kubeconfig Secret -> live inventory connection -> status, health, taints.

A broken or missing kubeconfig never raises out of a handler: it becomes ``Ready=False`` with a
reason (``SecretNotFound``, ``KubeconfigInvalid``, ``Unreachable``, ...) and the operator keeps
serving the other members.

Health: each member's connection probes ``/readyz`` and watches its nodes (see
:mod:`flotilla.inventory.member`), feeding a :class:`~flotilla.inventory.health.HealthTracker`
(thresholds and hysteresis). One thread per member here (``flotilla-health-<member>``, not a
Kopf timer) turns the verdict into the ``Ready`` condition and the automatic taints of
:mod:`flotilla.api.taints` as soon as it changes, and adds the ``NoExecute`` taint when the
grace period ends. It writes only while this replica leads (``active``); a standby keeps probing
so that it knows every member's health when it takes over. Taints are written with a merge patch
of ``spec.taints`` carrying the resourceVersion it was computed from (a conflict re-reads and
recomputes), so taints set by users are never lost. The taints are handed to the scheduler cache
at once (:meth:`InventoryManager.set_taints`), whose change callback (the runtime's
``notify_capacity_changed``) queues the member's workloads for the failover controller.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import ApiClient, ApiException

from flotilla import kube, metrics
from flotilla.api import GROUP_VERSION
from flotilla.api.conditions import find_condition, new_condition, set_condition
from flotilla.api.taints import (
    AUTOMATIC_KEYS,
    automatic_taints,
    no_execute_due,
    same_taints,
    taint_string,
)
from flotilla.inventory import InventoryManager
from flotilla.inventory.client import InventoryError, load_kubeconfig
from flotilla.inventory.health import Health, HealthStatus, Reason
from flotilla.inventory.member import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_PROBE_TIMEOUT,
    DEFAULT_SUCCESS_THRESHOLD,
)
from flotilla.leader import env_bool
from flotilla.scheduler import SchedulerCache

log = logging.getLogger("flotilla.members")

DEFAULT_NO_EXECUTE_GRACE = 30.0
"""Seconds a member stays tainted NoSchedule (NotReady) before the NoExecute taint is added."""

ENV_PROBE_INTERVAL = "FLOTILLA_MEMBER_PROBE_INTERVAL"
ENV_PROBE_TIMEOUT = "FLOTILLA_MEMBER_PROBE_TIMEOUT"
ENV_FAILURE_THRESHOLD = "FLOTILLA_MEMBER_FAILURE_THRESHOLD"
ENV_SUCCESS_THRESHOLD = "FLOTILLA_MEMBER_SUCCESS_THRESHOLD"
ENV_AUTO_TAINTS = "FLOTILLA_AUTO_TAINTS"
ENV_NO_EXECUTE_GRACE = "FLOTILLA_MEMBER_NOEXECUTE_GRACE"
MEMBER_KIND = "MemberCluster"
CONFLICT_RETRIES = 5


def kubeconfig_from_secret(secret: Mapping[str, Any], key: str) -> str:
    """The kubeconfig text stored under ``key`` of a Secret (``data`` base64, or ``stringData``)."""
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key])
    data = (secret.get("data") or {}).get(key)
    if data is None:
        raise KeyError(
            f"Secret {secret['metadata'].get('namespace')}/{secret['metadata']['name']} has no key {key!r}"
        )
    return base64.b64decode(data).decode()


@dataclass(frozen=True)
class HealthSettings:
    """How members are probed and tainted (environment: see :meth:`from_env`)."""

    probe_interval: float = DEFAULT_PROBE_INTERVAL
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD
    auto_taints: bool = True
    no_execute_grace: float | None = DEFAULT_NO_EXECUTE_GRACE
    """Seconds NotReady (tainted NoSchedule) before NoExecute is added; None: never."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HealthSettings:
        """``FLOTILLA_MEMBER_PROBE_INTERVAL`` (s, default 2), ``FLOTILLA_MEMBER_PROBE_TIMEOUT``
        (s, default 3), ``FLOTILLA_MEMBER_FAILURE_THRESHOLD`` (default 3),
        ``FLOTILLA_MEMBER_SUCCESS_THRESHOLD`` (default 2), ``FLOTILLA_AUTO_TAINTS`` (default
        true) and ``FLOTILLA_MEMBER_NOEXECUTE_GRACE`` (s, default 30; negative: never NoExecute)."""
        env = os.environ if environ is None else environ

        def number(key: str, default: float) -> float:
            raw = (env.get(key) or "").strip()
            return float(raw) if raw else default

        grace = number(ENV_NO_EXECUTE_GRACE, DEFAULT_NO_EXECUTE_GRACE)
        return cls(
            probe_interval=max(0.1, number(ENV_PROBE_INTERVAL, DEFAULT_PROBE_INTERVAL)),
            probe_timeout=max(0.1, number(ENV_PROBE_TIMEOUT, DEFAULT_PROBE_TIMEOUT)),
            failure_threshold=max(1, int(number(ENV_FAILURE_THRESHOLD, DEFAULT_FAILURE_THRESHOLD))),
            success_threshold=max(1, int(number(ENV_SUCCESS_THRESHOLD, DEFAULT_SUCCESS_THRESHOLD))),
            auto_taints=env_bool(env.get(ENV_AUTO_TAINTS), True),
            no_execute_grace=grace if grace >= 0 else None,
        )


class _HealthLoop:
    """One member's health thread: ``tick()`` when poked, when it asks, or every ``interval``."""

    def __init__(self, name: str, tick: Callable[[str], float | None], interval: float) -> None:
        self.name = name
        self._tick = tick
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flotilla-health-{name}", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.0
        failures = 0
        while True:
            self._wake.wait(delay)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                wanted = self._tick(self.name)
                failures = 0
            except Exception as exc:  # never let one member's loop die: retry with a backoff
                failures += 1
                wanted = min(0.5 * 2**failures, 30.0)
                log.warning("member %s: health sync failed (retry in %.1fs): %s", self.name, wanted, exc)
            delay = self._interval if wanted is None else max(0.05, min(wanted, self._interval))


@dataclass
class MemberController:
    hub: ApiClient
    cache: SchedulerCache
    lock: threading.RLock
    on_change: Callable[[str], None] = lambda _name: None
    active: Callable[[], bool] = lambda: True
    """Whether this replica leads: a standby keeps its inventory warm but writes nothing."""
    settings: HealthSettings = field(default_factory=HealthSettings.from_env)
    inventory: InventoryManager = field(init=False)
    _clients: dict[str, tuple[str, ApiClient]] = field(default_factory=dict)
    _bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    _loops: dict[str, _HealthLoop] = field(default_factory=dict)
    _seen: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    _loops_lock: threading.Lock = field(default_factory=threading.Lock)
    _problems: set[str] = field(default_factory=set)
    """Members whose Secret or kubeconfig cannot be used (their Ready condition says why)."""

    def __post_init__(self) -> None:
        self.inventory = InventoryManager(
            self.cache,
            self.lock,
            on_change=self._inventory_changed,
            probe_interval=self.settings.probe_interval,
            failure_threshold=self.settings.failure_threshold,
            success_threshold=self.settings.success_threshold,
            probe_timeout=self.settings.probe_timeout,
        )

    def ready(self, name: str) -> bool:
        """Whether the member is connected and Ready (its figures are live)."""
        return name in self._clients and self.inventory.ready(name)

    def settled(self, name: str) -> bool:
        """Whether the member's first verdict is in: Ready with its inventory listed, or a known
        problem (its Secret or kubeconfig, or a failed probe); not while it is still connecting."""
        if name in self._problems:
            return True
        try:
            ready, reason, *_ = self.inventory.readiness(name)
        except KeyError:
            return False  # not reconciled yet
        return ready or reason not in (Reason.CONNECTING, Reason.SYNCING)

    def api(self, name: str) -> ApiClient | None:
        """An ApiClient for a connected member (None when it has no usable kubeconfig)."""
        entry = self._clients.get(name)
        return entry[1] if entry else None

    async def reconcile(self, name: str, body: Mapping[str, Any]) -> None:
        await asyncio.to_thread(self._reconcile_sync, name, dict(body))

    def _reconcile_sync(self, name: str, body: dict[str, Any]) -> None:
        spec = body.get("spec") or {}
        ref = spec.get("secretRef") or {}
        labels = dict((body.get("metadata") or {}).get("labels") or {})
        location = {k: str(spec.get(k) or labels.get(k) or "") for k in ("provider", "region", "zone")}
        taints = list(spec.get("taints") or [])
        text: str | None = None
        problem: tuple[str, str] | None = None
        self._bodies[name] = body
        try:
            secret = kube.get(self.hub, "v1", "Secret", ref.get("name", ""), ref.get("namespace"))
            if secret is None:
                problem = (
                    "SecretNotFound",
                    f"Secret {ref.get('namespace')}/{ref.get('name')} does not exist",
                )
            else:
                text = kubeconfig_from_secret(secret, ref.get("key") or "kubeconfig")
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            problem = ("KubeconfigInvalid", str(exc))
        except ApiException as exc:
            problem = ("SecretUnreadable", f"reading the Secret failed: {exc.status} {exc.reason}")
        if text is not None:
            digest = hashlib.sha256(text.encode()).hexdigest()
            if self._clients.get(name, ("",))[0] != digest:
                try:
                    client = ApiClient(load_kubeconfig(text))
                except InventoryError as exc:
                    self._clients.pop(name, None)
                    problem = (exc.reason, exc.message)
                else:
                    self._clients[name] = (digest, client)
            self.inventory.register(name, text, labels=labels, taints=taints, **location)
            self._start_loop(name)
        else:
            self._clients.pop(name, None)
            self._stop_loop(name)
            self.inventory.unregister(name)
        if problem is None:
            self._problems.discard(name)
        else:
            self._problems.add(name)
        if self.active():
            self._publish(name, body, problem)

    def _publish(self, name: str, body: dict[str, Any], problem: tuple[str, str] | None) -> None:
        previous = list((body.get("status") or {}).get("conditions") or [])
        generation = (body.get("metadata") or {}).get("generation")
        status: dict[str, Any] = {"observedGeneration": generation}
        changed_at: datetime | None = None
        if problem is not None:
            ready, reason, message = False, problem[0], problem[1]
        else:
            state = self.inventory.state(name)
            ready, reason, message = state.ready, state.reason, state.message
            changed_at = state.last_transition_time
            status.update(state.status_fields())
            summary = status.get("resourceSummary")
            if summary and "gpuModelNames" not in summary:
                summary["gpuModelNames"] = ",".join(
                    sorted(m["model"] for m in summary.get("gpuModels") or ())
                )
        metrics.CLUSTER_READY.labels(cluster=name).set(1 if ready else 0)
        if problem is None:  # (a member with a problem has no figures: its last ones stay)
            metrics.set_cluster_gpus(name, (status.get("resourceSummary") or {}).get("gpuModels") or ())
        # lastTransitionTime: when the member's readiness flipped (kept while the status holds).
        ready_condition = new_condition("Ready", ready, reason, message[:32768], generation, now=changed_at)
        status["conditions"] = set_condition(previous, ready_condition)
        current = body.get("status") or {}
        if any(current.get(k) != v for k, v in status.items() if k != "conditions") or [
            (c["type"], c["status"], c["reason"], c["message"]) for c in current.get("conditions") or []
        ] != [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]]:
            result = kube.patch(
                self.hub, {**body, "apiVersion": body["apiVersion"]}, {"status": status}, "status"
            )
            if result and problem is None and name in self._bodies:
                self._bodies[name] = result

    # -- health and automatic taints ---------------------------------------------------------------
    def _inventory_changed(self, name: str) -> None:
        self.on_change(name)
        loop = self._loops.get(name)
        if loop is None:
            return
        try:
            seen = (*self.inventory.readiness(name)[:3], self.inventory.health(name).state)
        except KeyError:
            return
        if self._seen.get(name) != seen:
            self._seen[name] = seen
            loop.poke()

    def _start_loop(self, name: str) -> None:
        with self._loops_lock:
            loop = self._loops.get(name)
            if loop is None:
                self._loops[name] = _HealthLoop(name, self.sync_health, self.settings.probe_interval)
            else:
                loop.poke()  # the spec may have changed (e.g. someone edited the taints)

    def _stop_loop(self, name: str) -> None:
        with self._loops_lock:
            loop = self._loops.pop(name, None)
        if loop is not None:
            loop.stop()
        self._seen.pop(name, None)

    def sync_health(self, name: str, now: datetime | None = None) -> float | None:
        """Bring the member's Ready condition and automatic taints in line with its health.

        Writes only while this replica leads. Returns how many seconds until it should run again
        (the NoExecute taint falls due), or None for "no deadline".
        """
        try:
            status = self.inventory.health(name)
            ready, reason, message, _ = self.inventory.readiness(name)
        except KeyError:
            return None
        metrics.CLUSTER_READY.labels(cluster=name).set(1 if ready else 0)
        body = self._bodies.get(name)
        if body is None or not self.active():
            return None
        now = now or datetime.now(UTC)
        wait = self._sync_taints(name, body, status, now)
        body = self._bodies.get(name) or body
        condition = find_condition((body.get("status") or {}).get("conditions"), "Ready") or {}
        wanted = ("True" if ready else "False", reason, message[:32768])
        if (condition.get("status"), condition.get("reason"), condition.get("message")) != wanted:
            self._publish(name, body, None)
        return wait

    def _wanted_taints(
        self, body: Mapping[str, Any], status: HealthStatus, now: datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        current = list(((body.get("spec") or {}).get("taints")) or [])
        wanted = automatic_taints(
            current,
            status.state.value,
            unreachable=status.reason == Reason.UNREACHABLE,
            since=datetime.fromtimestamp(status.since, UTC),
            now=now,
            no_execute_after=self.settings.no_execute_grace,
            enabled=self.settings.auto_taints,
        )
        return current, wanted

    def _sync_taints(
        self, name: str, body: dict[str, Any], status: HealthStatus, now: datetime
    ) -> float | None:
        current, wanted = self._wanted_taints(body, status, now)
        for _ in range(CONFLICT_RETRIES):
            if same_taints(current, wanted):
                break
            rv = (body.get("metadata") or {}).get("resourceVersion")
            try:
                result = kube.patch(
                    self.hub,
                    {"apiVersion": GROUP_VERSION, "kind": MEMBER_KIND, "metadata": {"name": name}},
                    {"metadata": {"resourceVersion": rv}, "spec": {"taints": wanted}},
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise
                fresh = kube.get(self.hub, GROUP_VERSION, MEMBER_KIND, name)  # someone else wrote: redo
                if fresh is None:
                    return None
                body = fresh
                self._bodies[name] = fresh
                current, wanted = self._wanted_taints(body, status, now)
                continue
            self._bodies[name] = body = result
            self._record_taint_change(name, current, wanted)
            self.inventory.set_taints(name, (result.get("spec") or {}).get("taints") or ())
            current = wanted
            break
        else:
            raise RuntimeError(f"the MemberCluster kept changing ({CONFLICT_RETRIES} conflicts)")
        if status.state is not Health.NOT_READY or not self.settings.auto_taints:
            return None
        return no_execute_due(
            current,
            since=datetime.fromtimestamp(status.since, UTC),
            now=now,
            no_execute_after=self.settings.no_execute_grace,
        )

    @staticmethod
    def _record_taint_change(name: str, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
        def auto(taints: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
            return {(t["key"], t["effect"]): t for t in taints if t.get("key") in AUTOMATIC_KEYS}

        old, new = auto(before), auto(after)
        for key, effect in new.keys() - old.keys():
            metrics.CLUSTER_TAINTS_ADDED.labels(cluster=name, key=key, effect=effect).inc()
            log.info("member %s: tainted %s", name, taint_string(new[(key, effect)]))
        for gone in old.keys() - new.keys():
            log.info("member %s: taint %s removed", name, taint_string(old[gone]))

    def unregister(self, name: str) -> None:
        self._stop_loop(name)
        self.inventory.unregister(name)
        self._clients.pop(name, None)
        self._bodies.pop(name, None)
        self._problems.discard(name)
        metrics.forget_cluster(name)

    def stop_all(self) -> None:
        with self._loops_lock:
            loops = list(self._loops.values())
            self._loops.clear()
        for loop in loops:
            loop.stop()
        self.inventory.stop_all()
        self._clients.clear()
