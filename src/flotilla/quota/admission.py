"""The quota admission check: an apply that would take a namespace past its FederatedResourceQuota
is denied; one that fits is charged in the quota's status before it is admitted.

Charging works the way kube-apiserver's ResourceQuota admission does: read the quota, check,
and write ``status.overallUsed`` plus a :class:`~flotilla.quota.ledger.Charge` with the
quota's resourceVersion as a precondition. Two concurrent applies (from any number of operator
replicas) cannot both take the last of the quota: the loser's write answers 409 and it checks
again against the winner's figures. A dry run is checked and charges nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client import ApiException

from flotilla import metrics
from flotilla.admission.review import AdmissionRequest, AdmissionResponse
from flotilla.api import GROUP_VERSION
from flotilla.controllers.client import Client
from flotilla.controllers.hubstate import newer
from flotilla.interpreter import InterpreterRegistry
from flotilla.quota.ledger import (
    Charge,
    Quota,
    charged,
    check,
    effective_usage,
    format_quota_list,
    increase_of,
)
from flotilla.quota.usage import workload_id, workload_usage
from flotilla.scheduler.quantity import ResourceList

log = logging.getLogger("flotilla.quota")

QUOTA_KIND = "FederatedResourceQuota"

Observed = Callable[[str], Mapping[str, ResourceList]]
"""Usage of the workloads of a namespace as this replica's cache has them (workload id -> usage)."""


class QuotaAdmission:
    def __init__(
        self,
        hub: Client,
        registry: InterpreterRegistry,
        *,
        charge_ttl: float = 30.0,
        deadline: float = 8.0,
        observed: Observed = lambda _ns: {},
        kind_of: Callable[[str, str, str], str | None] = lambda _g, _v, _r: None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.hub, self.registry = hub, registry
        self.charge_ttl, self.deadline = charge_ttl, deadline
        self.observed, self.kind_of, self.clock = observed, kind_of, clock
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        """``kind_of(group, version, plural)``: the kind of a resource the webhook is registered for."""

    async def review(self, request: AdmissionRequest) -> AdmissionResponse:
        started = time.perf_counter()
        try:
            response, reason = await self._review(request)
        except Exception as exc:
            metrics.QUOTA_ADMISSIONS.labels("error", type(exc).__name__).inc()
            metrics.QUOTA_ADMISSION_DURATION.labels("error").observe(time.perf_counter() - started)
            raise
        result = "allowed" if response.allowed else "denied"
        metrics.QUOTA_ADMISSIONS.labels(result, reason).inc()
        metrics.QUOTA_ADMISSION_DURATION.labels(result).observe(time.perf_counter() - started)
        return response

    async def _review(self, request: AdmissionRequest) -> tuple[AdmissionResponse, str]:
        obj, old_obj = request.object, request.old_object
        if request.operation not in ("CREATE", "UPDATE") or obj is None:
            return AdmissionResponse(True), "NotChecked"
        if request.sub_resource == "scale":  # kubectl scale: a Scale object, not the workload
            obj, old_obj = await self._scaled(request)
            if obj is None:
                return AdmissionResponse(True), "NotAWorkload"
        elif request.sub_resource:
            return AdmissionResponse(True), "NotChecked"
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        interpreter = self.registry.get(api_version, kind)
        if interpreter is None:
            return AdmissionResponse(True), "NotAWorkload"
        try:
            new = workload_usage(interpreter, obj)
            old = workload_usage(interpreter, old_obj) if old_obj else {}
        except (ValueError, KeyError, TypeError) as exc:
            # The object cannot be read as a workload: other admission steps (the schema) judge it.
            return AdmissionResponse(True, warnings=(f"quota not checked: {exc}",)), "Unreadable"
        increase = increase_of(new, old)
        if not increase:
            return AdmissionResponse(True), "NoIncrease"
        namespace = request.namespace or str((obj.get("metadata") or {}).get("namespace") or "")
        quotas = await asyncio.to_thread(self.hub.list, GROUP_VERSION, QUOTA_KIND, namespace)
        if not quotas:
            return AdmissionResponse(True), "NoQuota"
        meta = obj.get("metadata") or {}
        workload = workload_id(
            api_version, kind, str(meta.get("name") or meta.get("generateName") or request.name)
        )
        done: list[tuple[dict[str, Any], Charge]] = []
        for body in sorted(quotas, key=lambda b: str(b["metadata"]["name"])):
            denial, charge = await self._charge(body, workload, increase, new, request.dry_run)
            if denial:
                for earlier, made in done:
                    await self._release(earlier, made)
                return AdmissionResponse(False, denial, code=403, reason="Forbidden"), "Exceeded"
            if charge is not None:
                done.append((body, charge))
        return AdmissionResponse(True), "Charged" if done else "WithinQuota"

    async def _scaled(self, request: AdmissionRequest) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """For an update of a workload's scale subresource: (the workload as it will be, as it is)."""
        res = request.resource
        kind = self.kind_of(res.group, res.version, res.resource)
        if kind is None:
            return None, None
        api_version = f"{res.group}/{res.version}" if res.group else res.version
        interpreter = self.registry.get(api_version, kind)
        current = await asyncio.to_thread(self.hub.get, api_version, kind, request.name, request.namespace)
        if interpreter is None or current is None:
            return None, None
        current.setdefault("apiVersion", api_version)
        current.setdefault("kind", kind)
        replicas = int(((request.object or {}).get("spec") or {}).get("replicas") or 0)
        try:
            return interpreter.revise_replicas(current, replicas), current
        except ValueError:
            return None, None

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _newest(self, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
        known = self._latest.get(key)
        return known if known is not None and not newer(body, known) else body

    async def _charge(
        self, body: dict[str, Any], workload: str, increase: ResourceList, usage: ResourceList, dry_run: bool
    ) -> tuple[str, Charge | None]:
        """Check one quota and charge it; (denial message, charge made).

        Applies to the same quota take turns in this replica (no point racing each other to a
        409), each starting from the quota as the previous one left it; a 409 then only comes
        from another replica or the quota controller, and is met by reading the quota again."""
        key = (str(body["metadata"].get("namespace") or ""), str(body["metadata"]["name"]))
        give_up = time.monotonic() + self.deadline
        attempt = 0
        async with self._lock(key):
            body = self._newest(key, body)
            fresh = False  # read from the API server by this call (a denial is only given on that)
            while True:
                quota = Quota.from_body(body)
                now = self.clock()
                used = quota.used
                if used is None:  # the quota controller has not computed it yet: count from the cache
                    used, _live = effective_usage(quota, self.observed(quota.namespace), now)
                verdict = check(quota, increase, used)
                if verdict.allowed and (not verdict.increase or dry_run):
                    return "", None
                if verdict.allowed:
                    charge = Charge(
                        workload=workload,
                        usage=quota.restrict(usage),
                        increase=verdict.increase,
                        expires=now + dt.timedelta(seconds=self.charge_ttl),
                    )
                    patch = {
                        "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                        "status": charged(body.get("status") or {}, quota, charge, used),
                    }
                    try:
                        self._latest[key] = await asyncio.to_thread(self.hub.patch, body, patch, "status")
                        return "", charge
                    except ApiException as exc:
                        if exc.status != 409:
                            raise
                    metrics.QUOTA_CHARGE_CONFLICTS.inc()
                    attempt += 1
                    if time.monotonic() > give_up:
                        return (
                            f"{quota.title}: could not record the charge after {attempt} attempts "
                            "(the quota is being updated by many applies at once); apply again",
                            None,
                        )
                    # Another replica or the controller wrote first: jittered, so replicas do
                    # not collide again in lockstep.
                    await asyncio.sleep(random.uniform(0, min(0.002 * 2**attempt, 0.1)))
                elif fresh:
                    return verdict.message, None
                latest = await asyncio.to_thread(
                    self.hub.get, GROUP_VERSION, QUOTA_KIND, quota.name, quota.namespace
                )
                if latest is None:
                    self._latest.pop(key, None)
                    return "", None  # the quota was deleted meanwhile: nothing left to enforce
                body = self._latest[key] = latest
                fresh = True

    async def _release(self, body: dict[str, Any], charge: Charge) -> None:
        """Undo a charge (another quota denied the same apply). Best effort: it expires anyway."""
        for _ in range(10):
            fresh = await asyncio.to_thread(
                self.hub.get,
                GROUP_VERSION,
                QUOTA_KIND,
                body["metadata"]["name"],
                body["metadata"]["namespace"],
            )
            if fresh is None:
                return
            status = dict(fresh.get("status") or {})
            mine = charge.to_dict()
            charges = [c for c in status.get("charges") or () if c != mine]
            if len(charges) == len(status.get("charges") or ()):
                return
            quota = Quota.from_body(fresh)
            used = dict(quota.used or {})
            for r, v in charge.increase.items():
                used[r] = max(used.get(r, 0) - v, 0)
            status["charges"] = charges
            status["overallUsed"] = format_quota_list(used)
            patch = {"metadata": {"resourceVersion": fresh["metadata"]["resourceVersion"]}, "status": status}
            try:
                await asyncio.to_thread(self.hub.patch, fresh, patch, "status")
                return
            except ApiException as exc:
                if exc.status != 409:
                    log.warning("could not release a quota charge of %s: %s", charge.workload, exc.reason)
                    return
