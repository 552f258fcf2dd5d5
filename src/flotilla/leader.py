"""Leader election over a ``coordination.k8s.io/v1`` Lease, after client-go's ``leaderelection``.

One :class:`LeaderElector` per operator replica; the replica whose identity is the Lease's
``spec.holderIdentity`` is the leader. The rules are client-go's:

* a candidate takes the Lease when it does not exist (a create that answers 409 means another
  candidate won), when it already names this candidate, or when it has not changed for
  ``leaseDurationSeconds`` - measured on *this* replica's clock from the moment it last saw the
  record change (client-go's ``observedTime``), so clock skew between replicas does not matter and
  the Lease's own timestamps are informational;
* every write carries the ``resourceVersion`` last read (optimistic concurrency): a write based on a
  stale read answers 409 and the writer has lost that round;
* the leader renews every ``retry_period``; when it has not renewed for ``renew_deadline`` (which is
  shorter than the lease duration, so it steps down before any peer can take over) or it sees another
  holder in the Lease, it stops leading and goes back to waiting;
* on a graceful stop the leader stops its work (``on_stopped_leading``) and then releases the Lease
  (empty holder, a 1 s duration, as client-go's ``ReleaseOnCancel``) so a peer takes over on its
  next poll rather than after the lease expires.

Every API call is bounded: :func:`kube_lease_client` gives each request a timeout, and the elector
bounds each attempt again (by the time left before the renew deadline while leading). Bounds use
``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 ``wait_for`` can swallow a cancellation
that arrives as the inner call finishes, and then a graceful stop would never end.

The operator reads its settings with :meth:`ElectionSettings.from_env` (see ``ENV_*`` below; the Helm
chart sets them). No Kopf here: the operator wires :meth:`LeaderElector.run` into its startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kubernetes.client import ApiClient, ApiException

from flotilla import kube

log = logging.getLogger("flotilla")

LEASE_API_VERSION = "coordination.k8s.io/v1"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime

ENV_ENABLED = "FLOTILLA_LEADER_ELECT"
ENV_NAMESPACE = "FLOTILLA_LEADER_ELECTION_NAMESPACE"
ENV_NAME = "FLOTILLA_LEADER_ELECTION_NAME"
ENV_LEASE_DURATION = "FLOTILLA_LEASE_DURATION"
ENV_RENEW_DEADLINE = "FLOTILLA_RENEW_DEADLINE"
ENV_RETRY_PERIOD = "FLOTILLA_RETRY_PERIOD"
ENV_POD_NAME = "POD_NAME"

DEFAULT_LEASE_NAME = "flotilla-operator"
DEFAULT_LEASE_SECONDS = 15.0
DEFAULT_RENEW_DEADLINE = 10.0
DEFAULT_RETRY_PERIOD = 2.0
DEFAULT_REQUEST_TIMEOUT = 5.0

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeaseConflict(Exception):
    """HTTP 409: a create found the Lease already there, or an update carried a stale resourceVersion."""


class LeaseClient(Protocol):
    """The three Lease calls the elector makes; each must give up after a bounded time."""

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease object, or None when it does not exist."""
        ...

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        """Create the Lease and return it as stored; :class:`LeaseConflict` when it already exists."""
        ...

    async def update(self, lease: dict[str, Any]) -> dict[str, Any]:
        """Replace the Lease (``metadata.resourceVersion`` set) and return it as stored;
        :class:`LeaseConflict` when the resourceVersion is stale."""
        ...


# ------------------------------------------------------------------ the record in a Lease
@dataclass(frozen=True)
class LeaseRecord:
    """The leader-election fields of a Lease ``spec`` (client-go's ``LeaderElectionRecord``)."""

    holder: str
    lease_seconds: int
    acquire_time: str | None
    renew_time: str | None
    transitions: int

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any], default_seconds: int) -> LeaseRecord:
        spec = lease.get("spec") or {}
        seconds = spec.get("leaseDurationSeconds")
        return cls(
            holder=spec.get("holderIdentity") or "",
            # A Lease without a duration is treated as ours would be (client-go reads it as 0 s).
            lease_seconds=int(seconds) if seconds else default_seconds,
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_seconds,
            "leaseTransitions": self.transitions,
        }
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


def _timestamp() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


@dataclass(frozen=True)
class LeaderStatus:
    """A snapshot for metrics and logs (``renewed_at`` is on the elector's clock)."""

    identity: str
    is_leader: bool
    holder: str | None  # the holder last seen in the Lease ("" when released, None before the first read)
    lease_transitions: int  # the Lease's leaseTransitions as last seen
    times_leading: int  # how many times this elector became leader
    failed_attempts: int  # acquire/renew attempts that failed with an error (not lost races)
    renewed_at: float | None  # last successful acquire or renewal while leading


# ------------------------------------------------------------------ the elector
class LeaderElector:
    """Campaign for one Lease; see the module docstring for the rules."""

    def __init__(
        self,
        client: LeaseClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        renew_deadline: float = DEFAULT_RENEW_DEADLINE,
        retry_period: float = DEFAULT_RETRY_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        if not 0 < retry_period < renew_deadline < lease_seconds:
            raise ValueError(
                "leader election needs 0 < retry_period < renew_deadline < lease_seconds, got "
                f"{retry_period} / {renew_deadline} / {lease_seconds}"
            )
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        # The Lease's leaseDurationSeconds is an integer: round up, never shorter than asked.
        self._lease_int = max(1, math.ceil(lease_seconds))
        self._lease: dict[str, Any] | None = None  # last object read or written (its resourceVersion)
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # our clock when _observed last changed
        self._leading = False
        self._renewed_at: float | None = None
        self._times_leading = 0
        self._failed_attempts = 0
        self._failing = False
        self._logged_holder: str | None = None

    # -------------------------------------------------------------- state
    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def holder(self) -> str | None:
        return self._observed.holder if self._observed is not None else None

    def status(self) -> LeaderStatus:
        return LeaderStatus(
            identity=self.identity,
            is_leader=self._leading,
            holder=self.holder,
            lease_transitions=self._observed.transitions if self._observed is not None else 0,
            times_leading=self._times_leading,
            failed_attempts=self._failed_attempts,
            renewed_at=self._renewed_at if self._leading else None,
        )

    # -------------------------------------------------------------- the loop
    async def run(
        self,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], Awaitable[None]],
    ) -> None:
        """Loop forever: wait to acquire, call on_started_leading, renew; if renewal fails past
        renew_deadline call on_stopped_leading and go back to waiting. Cancellation releases the
        lease if held.

        ``on_started_leading`` runs as its own task while the elector keeps renewing, so it may be
        slow or even run for the whole term; if it is still running when leadership ends it is
        cancelled before ``on_stopped_leading`` is awaited. ``is_leader`` is already false when
        ``on_stopped_leading`` runs.

        On cancellation (graceful stop) while leading: the work task is cancelled, then
        ``on_stopped_leading`` is awaited, and only then is the Lease released - so a standby cannot
        start while this replica still works (the release happens even if the callback fails). An
        exception from either callback stops leading, releases the Lease and propagates.
        """
        work: asyncio.Task[None] | None = None
        try:
            while True:
                await self._acquire()
                self._leading = True
                self._times_leading += 1
                self._renewed_at = self._clock()
                self._logged_holder = None
                log.info(
                    "leader election: %s became the leader (lease %s/%s, transitions %d)",
                    self.identity,
                    self.namespace,
                    self.name,
                    self._observed.transitions if self._observed else 0,
                )
                work = asyncio.create_task(_invoke(on_started_leading), name=f"leading:{self.name}")
                reason = await self._renew(work)
                log.info("leader election: %s stopped leading: %s", self.identity, reason)
                self._leading = False
                await _stop(work)
                work = None
                await on_stopped_leading()
        finally:
            was_leading, self._leading = self._leading, False
            try:
                if work is not None:
                    await _stop(work)
                if was_leading:
                    await on_stopped_leading()
            finally:
                await self._release()

    async def _acquire(self) -> None:
        while True:
            if await self._attempt(self.renew_deadline):
                return
            holder = self.holder
            if holder and holder != self.identity and holder != self._logged_holder:
                log.info(
                    "leader election: lease %s/%s is held by %s; %s waits",
                    self.namespace,
                    self.name,
                    holder,
                    self.identity,
                )
                self._logged_holder = holder
            # A little jitter keeps several candidates from polling in lockstep.
            await asyncio.sleep(self.retry_period * random.uniform(0.8, 1.0))

    async def _renew(self, work: asyncio.Task[None]) -> str:
        """Renew until leadership is lost; returns why. Raises what the work task raised."""
        while True:
            if work.done():
                await asyncio.sleep(self.retry_period)
            else:
                await asyncio.wait({work}, timeout=self.retry_period)
            if work.done() and not work.cancelled():
                failure = work.exception()
                if failure is not None:
                    raise failure
            assert self._renewed_at is not None
            remaining = self._renewed_at + self.renew_deadline - self._clock()
            if remaining <= 0:
                return f"could not renew the lease within {self.renew_deadline:g}s"
            if await self._attempt(remaining):
                self._renewed_at = self._clock()
                continue
            holder = self.holder
            if holder and holder != self.identity:
                return f"the lease is now held by {holder}"
            if self._clock() - self._renewed_at >= self.renew_deadline:
                return f"could not renew the lease within {self.renew_deadline:g}s"

    async def _attempt(self, timeout: float) -> bool:
        """One acquire-or-renew, bounded by ``timeout``; errors are logged and count as a failure."""
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                await self._try_acquire_or_renew()
        except LeaseConflict:
            log.debug(
                "leader election: %s lost a race for lease %s/%s", self.identity, self.namespace, self.name
            )
            return False
        except _NotAcquired:
            return False
        except Exception as exc:
            self._failed_attempts += 1
            detail = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(
                level,
                "leader election: %s could not read or write lease %s/%s: %s",
                self.identity,
                self.namespace,
                self.name,
                detail,
            )
            self._failing = True
            return False
        if self._failing:
            log.info(
                "leader election: %s reaches lease %s/%s again", self.identity, self.namespace, self.name
            )
            self._failing = False
        return True

    # -------------------------------------------------------------- one round (client-go's tryAcquireOrRenew)
    async def _try_acquire_or_renew(self) -> None:
        """Take or renew the Lease, or raise (:class:`_NotAcquired`, :class:`LeaseConflict`, errors)."""
        stamp = _timestamp()
        desired = LeaseRecord(self.identity, self._lease_int, stamp, stamp, 0)

        # Fast path: we hold it and it is valid - write on top of the last object we saw.
        observed = self._observed
        if (
            self._lease is not None
            and observed is not None
            and observed.holder == self.identity
            and self._valid(self._clock())
        ):
            record = replace(desired, acquire_time=observed.acquire_time, transitions=observed.transitions)
            try:
                self._store(await self.client.update(self._body(self._lease, record)), record)
                return
            except LeaseConflict:
                log.debug(
                    "leader election: lease %s/%s changed since our last write", self.namespace, self.name
                )

        lease = await self.client.get(self.namespace, self.name)
        if lease is None:
            self._store(await self.client.create(self._body(None, desired)), desired)
            return
        current = LeaseRecord.from_lease(lease, self._lease_int)
        self._lease = lease
        if current != self._observed:
            self._observed, self._observed_at = current, self._clock()
        if current.holder and current.holder != self.identity and self._valid(self._clock()):
            raise _NotAcquired
        if current.holder == self.identity:
            record = replace(
                desired, acquire_time=current.acquire_time or stamp, transitions=current.transitions
            )
        else:
            record = replace(desired, transitions=current.transitions + 1)
        self._store(await self.client.update(self._body(lease, record)), record)

    def _valid(self, now: float) -> bool:
        """The observed record has not expired by our clock (client-go's isLeaseValid)."""
        return self._observed is not None and self._observed_at + self._observed.lease_seconds > now

    def _body(self, base: dict[str, Any] | None, record: LeaseRecord) -> dict[str, Any]:
        if base is None:
            return {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": record.to_spec(),
            }
        body = dict(base)
        body.setdefault("apiVersion", LEASE_API_VERSION)
        body.setdefault("kind", "Lease")
        body["metadata"] = dict(base.get("metadata") or {})
        # Keep spec fields this elector does not manage (e.g. strategy, preferredHolder).
        body["spec"] = {**(base.get("spec") or {}), **record.to_spec()}
        return body

    def _store(self, stored: dict[str, Any], record: LeaseRecord) -> None:
        """Remember what we wrote (as the server stored it, when it says) and when."""
        if stored.get("spec"):
            record = LeaseRecord.from_lease(stored, self._lease_int)
        self._lease = stored
        self._observed, self._observed_at = record, self._clock()

    async def _release(self) -> None:
        """Hand the Lease back if the last record we saw names us (client-go's release)."""
        observed = self._observed
        if self._lease is None or observed is None or observed.holder != self.identity:
            return
        timeout = max(self.retry_period, min(DEFAULT_REQUEST_TIMEOUT, self.renew_deadline))
        try:
            async with asyncio.timeout(timeout):
                released = await self._write_release(self._lease, observed)
        except Exception as exc:
            log.warning(
                "leader election: %s could not release lease %s/%s (%s); peers take over when it expires",
                self.identity,
                self.namespace,
                self.name,
                "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}",
            )
            return
        if released:
            log.info("leader election: %s released lease %s/%s", self.identity, self.namespace, self.name)
        else:
            log.info(
                "leader election: %s had no lease %s/%s to release (now held by %r)",
                self.identity,
                self.namespace,
                self.name,
                self.holder,
            )

    async def _write_release(self, lease: dict[str, Any], observed: LeaseRecord) -> bool:
        """Empty holder, 1 s duration. A 409 (our last write may have landed unseen, e.g. when an
        attempt was cancelled) is retried once on a fresh read if that read still names us."""
        for _ in range(2):
            stamp = _timestamp()
            record = LeaseRecord("", 1, stamp, stamp, observed.transitions)
            try:
                self._store(await self.client.update(self._body(lease, record)), record)
                return True
            except LeaseConflict:
                fresh = await self.client.get(self.namespace, self.name)
                if fresh is None:
                    return False
                lease, observed = fresh, LeaseRecord.from_lease(fresh, self._lease_int)
                self._lease, self._observed, self._observed_at = lease, observed, self._clock()
                if observed.holder != self.identity:
                    return False
        return False


class _NotAcquired(Exception):
    """The Lease is held by another candidate and has not expired."""


async def _invoke(callback: Callable[[], Awaitable[None]]) -> None:
    await callback()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait for it to end; its own exception (if any) is logged, not raised."""
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.debug("leader election: the leading task ended with %r", task.exception())


# ------------------------------------------------------------------ identity and settings
def default_identity() -> str:
    """``POD_NAME`` when set (the chart sets it from the downward API), else hostname_<8 hex>."""
    return _identity(os.environ.get(ENV_POD_NAME, ""))


def _identity(pod_name: str) -> str:
    return pod_name.strip() or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def env_bool(value: str | None, default: bool) -> bool:
    """A boolean setting from the environment: 1/true/yes/on (any case); unset or blank: default."""
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def default_namespace() -> str:
    """The namespace of the pod's service account (the release namespace in the chart), else ``default``."""
    with contextlib.suppress(OSError):
        namespace = _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        if namespace:
            return namespace
    return "default"


@dataclass(frozen=True)
class ElectionSettings:
    """The operator's leader-election settings, from the environment the Helm chart sets."""

    enabled: bool
    namespace: str
    name: str
    identity: str
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    renew_deadline: float = DEFAULT_RENEW_DEADLINE
    retry_period: float = DEFAULT_RETRY_PERIOD

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ElectionSettings:
        """``FLOTILLA_LEADER_ELECT`` (default false: a local ``kopf run`` needs no Lease),
        ``FLOTILLA_LEADER_ELECTION_NAMESPACE`` (default: the service account's namespace, else
        ``default``), ``FLOTILLA_LEADER_ELECTION_NAME`` (default ``flotilla-operator``),
        ``FLOTILLA_LEASE_DURATION`` / ``FLOTILLA_RENEW_DEADLINE`` / ``FLOTILLA_RETRY_PERIOD``
        (seconds; 15 / 10 / 2) and ``POD_NAME`` (the identity)."""
        env = os.environ if environ is None else environ
        return cls(
            enabled=env_bool(env.get(ENV_ENABLED), False),
            namespace=env.get(ENV_NAMESPACE, "").strip() or default_namespace(),
            name=env.get(ENV_NAME, "").strip() or DEFAULT_LEASE_NAME,
            identity=_identity(env.get(ENV_POD_NAME, "")),
            lease_seconds=float(env.get(ENV_LEASE_DURATION) or DEFAULT_LEASE_SECONDS),
            renew_deadline=float(env.get(ENV_RENEW_DEADLINE) or DEFAULT_RENEW_DEADLINE),
            retry_period=float(env.get(ENV_RETRY_PERIOD) or DEFAULT_RETRY_PERIOD),
        )

    def elector(self, client: LeaseClient, *, clock: Callable[[], float] = time.monotonic) -> LeaderElector:
        return LeaderElector(
            client,
            self.namespace,
            self.name,
            self.identity,
            lease_seconds=self.lease_seconds,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
            clock=clock,
        )


# ------------------------------------------------------------------ the Lease client over kube.request
class KubeLeaseClient:
    """:class:`LeaseClient` over :func:`flotilla.kube.request` (blocking; run in a thread).

    Each call is bounded twice: ``timeout`` goes to the request, and the awaiting side gives up
    after ``timeout`` (plus a second of slack) regardless, so a hung connection never stalls the
    elector.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        request: Callable[..., Any] | None = None,
    ) -> None:
        self.api = api
        self.timeout = timeout
        self._request: Callable[..., Any] = request if request is not None else kube.request

    @staticmethod
    def _path(namespace: str, name: str | None = None) -> str:
        path = f"/apis/{LEASE_API_VERSION}/namespaces/{namespace}/leases"
        return f"{path}/{name}" if name else path

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        content_type = "application/json" if body is not None else None
        call = asyncio.to_thread(
            self._request, self.api, method, path, body, content_type, None, timeout=self.timeout
        )
        try:
            async with asyncio.timeout(self.timeout + 1.0):
                return await call
        except ApiException as exc:
            if exc.status == 409:
                raise LeaseConflict(f"{method} {path}: {exc.reason}") from exc
            raise

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self._call("GET", self._path(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def create(self, lease: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", self._path(lease["metadata"]["namespace"]), lease)
        return result

    async def update(self, lease: dict[str, Any]) -> dict[str, Any]:
        meta = lease["metadata"]
        result: dict[str, Any] = await self._call("PUT", self._path(meta["namespace"], meta["name"]), lease)
        return result


def kube_lease_client(
    api: ApiClient,
    *,
    timeout: float = DEFAULT_REQUEST_TIMEOUT,
    request: Callable[..., Any] | None = None,
) -> LeaseClient:
    """The default :class:`LeaseClient`: ``flotilla.kube.request`` in a thread, every call bounded."""
    return KubeLeaseClient(api, timeout=timeout, request=request)
