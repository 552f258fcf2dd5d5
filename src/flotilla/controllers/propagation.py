"""Propagation: member copies of a binding's template, and the durable record of what was applied where.

Keyed by binding ``(namespace, name)``. For each chosen cluster the interpreted copy is
server-side applied only when something changed: the binding's status records, per cluster,
the digest of what was applied (the copy and its ConfigMaps/Secrets), the copy's generation
and UID, and when; a copy whose digest is unchanged and whose generation and UID on the member
(seen by the member watch) match the record is left alone. So a restart re-applies nothing,
and drift (a hand edit bumps the copy's generation; a deletion removes it) is repaired.

Copies on clusters no longer chosen are deleted, and so are orphans: copies whose ownership
labels name a binding that no longer exists (its binding was deleted while the operator was
down) or that no longer targets that cluster. The records, and the decision handed over by the
scheduling controller, wait here until the status controller's next write of the binding, which
carries them with what the members report (:meth:`PropagationController.compose`): one status
write, coalesced, after placement work; drift checks read the records not written yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from flotilla import FIELD_MANAGER, metrics
from flotilla.controllers.client import CLIENT_ERRORS, Client, failure_reason
from flotilla.controllers.common import EmitEvent, now, template_stub, with_condition
from flotilla.controllers.eviction import describe_tasks, kept_clusters, tasks_of
from flotilla.controllers.hubstate import HubState, Key, status_items, targets
from flotilla.controllers.member_copies import CopyRef, MemberCopies
from flotilla.controllers.scheduling import Decision, decided, summary_of
from flotilla.controllers.workloads import BINDING_API_VERSION
from flotilla.interpreter import Interpreter, InterpreterRegistry, dependencies, prepare_for_member

log = logging.getLogger("flotilla")

MemberClients = Callable[[str], Client | None]
APPLY_ERRORS: tuple[type[BaseException], ...] = (*CLIENT_ERRORS, ValueError)
"""What one apply may raise: the member's answer (or its absence), or ``ValueError`` when the
template cannot be made into a copy for that member."""
APPLIED_FIELDS = ("applied", "appliedMessage", "appliedGeneration", "memberUID", "appliedTime", "appliedHash")


@dataclass
class Composed:
    items: dict[str, dict[str, Any]]
    fields: dict[str, Any]
    conditions: list[dict[str, Any]]
    taken: dict[str, dict[str, Any] | None]
    decision: Decision | None


def digest(objs: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(objs, sort_keys=True, default=str).encode()).hexdigest()[:16]


class PropagationController:
    def __init__(
        self,
        hub: Client,
        state: HubState,
        registry: InterpreterRegistry,
        copies: MemberCopies,
        member_client: MemberClients,
        ensure_watch: Callable[[str, str, str], None],
        on_applied: Callable[[Key], None],
        member_ready: Callable[[str], bool] = lambda _name: True,
        emit: EmitEvent = lambda *_a: None,
    ) -> None:
        self.hub, self.state, self.registry, self.copies = hub, state, registry, copies
        self.emit = emit
        self._failures: dict[Key, str] = {}
        """The last ApplyFailed Event's message per binding: a failure retried with backoff is
        posted once, and again only when what failed changes."""
        self._unreadable: set[tuple[str, str, str]] = set()  # (template uid, kind, name) warned
        self.member_client = member_client
        self.ensure_watch = ensure_watch
        self.on_applied = on_applied
        self.member_ready = member_ready
        self._decisions: dict[Key, Decision] = {}
        self._unrecorded: dict[Key, dict[str, dict[str, Any] | None]] = {}
        self._namespaces: set[tuple[str, str]] = set()
        self.tombstones: dict[Key, dict[str, Any]] = {}
        self.on_copies_applied: Callable[[Key, set[str]], None] = lambda _key, _clusters: None
        """Told (on the loop) which clusters a reconcile applied a copy to (failover's timing)."""

    def note_decision(self, key: Key, decision: Decision) -> None:
        """Called by the scheduling controller (on the loop): record it with the next status write."""
        self._decisions[key] = decision

    def binding_deleted(self, body: Mapping[str, Any] | None) -> None:
        """The binding's last state, so its copies can be found and removed."""
        if body is not None and body.get("spec"):
            meta = body["metadata"]
            self.tombstones[(meta.get("namespace") or "", meta["name"])] = dict(body)

    # ------------------------------------------------------------------ reconcile
    async def reconcile(self, key: Key) -> None:
        binding = self.state.bindings.get(key)
        if binding is None or binding["metadata"].get("deletionTimestamp"):
            await self._remove_all(key, binding)
            return
        self.tombstones.pop(key, None)
        template = self.state.template_of(binding)
        interpreter = self.registry.get(*_gvk(binding))
        if template is None or interpreter is None:
            return  # the detector removes the binding of a template that is gone
        if not decided(binding):
            return  # no decision for the current inputs yet: keep the copies as they are until then
        chosen = targets(binding)
        records = self.records_of(key, binding)
        stray = self._stray_clusters(key, binding, chosen)
        results = await asyncio.to_thread(
            self._sync, key, binding, template, interpreter, chosen, records, stray
        )
        if results:
            self._unrecorded.setdefault(key, {}).update(results)
            applied = {c for c, r in results.items() if r is not None and r.get("applied")}
            if applied:
                self.on_copies_applied(key, applied)
        if results or key in self._decisions or key in self._unrecorded:
            self.on_applied(key)  # the status controller records them, with what members report
        failed = {
            c: r.get("appliedMessage")
            for c, r in results.items()
            if r is not None and not r.get("applied") and self.member_ready(c)
        }
        # Recorded; retried with the queue's backoff. A member that is not Ready is not retried
        # on a timer (thousands of bindings would each log a line a minute): it turning Ready
        # re-queues every binding on it.
        self._report(key, binding, results)
        if failed:
            raise RuntimeError("not applied: " + "; ".join(f"{c}: {m}" for c, m in sorted(failed.items())))

    def _report(
        self, key: Key, binding: Mapping[str, Any], results: Mapping[str, dict[str, Any] | None]
    ) -> None:
        """Events on the template: where its copies were applied, or why they could not be."""
        applied = sorted(c for c, r in results.items() if r is not None and r.get("applied"))
        failures = {
            c: str(r.get("appliedMessage") or "not applied")
            for c, r in results.items()
            if r is not None and not r.get("applied")
        }
        stub = template_stub(binding)
        if applied:
            self.emit(stub, "Normal", "Applied", "applied to " + ", ".join(applied))
        if failures:
            message = "; ".join(f"{c}: {m}" for c, m in sorted(failures.items()))
            if self._failures.get(key) != message:
                self._failures[key] = message
                self.emit(stub, "Warning", "ApplyFailed", message)
        elif applied:
            self._failures.pop(key, None)

    def _stray_clusters(self, key: Key, binding: Mapping[str, Any], chosen: Mapping[str, Any]) -> set[str]:
        """Clusters holding a copy (recorded, or seen by the member watch) that are not chosen,
        except those an eviction task keeps for now (purge mode Gracefully or Never)."""
        api_version, kind = _gvk(binding)
        name = binding["spec"]["resource"]["name"]
        seen = {r[0] for r in self.copies.copies_of(key) if (r[1], r[2], r[4]) == (api_version, kind, name)}
        return (set(self.records_of(key, binding)) | seen) - set(chosen) - kept_clusters(binding)

    def _sync(
        self,
        key: Key,
        binding: dict[str, Any],
        template: dict[str, Any],
        interpreter: Interpreter,
        chosen: Mapping[str, int | None],
        records: Mapping[str, dict[str, Any]],
        stray: set[str],
    ) -> dict[str, dict[str, Any] | None]:
        """Blocking (a worker thread): apply and delete; returns new records (None: copy removed)."""
        api_version, kind = template["apiVersion"], template["kind"]
        name = template["metadata"]["name"]
        results: dict[str, dict[str, Any] | None] = {}
        deps: list[dict[str, Any]] | None = None
        assignment = {n: r for n, r in chosen.items() if r is not None}
        for cluster, replicas in sorted(chosen.items()):
            client = self.member_client(cluster)
            record = records.get(cluster) or {"clusterName": cluster}
            if client is None:
                metrics.PROPAGATION_ATTEMPTS.labels(cluster=cluster, result="failed").inc()
                metrics.PROPAGATION_FAILURES.labels(cluster=cluster, reason="NotConnected").inc()
                results[cluster] = {
                    **record,
                    "applied": False,
                    "appliedMessage": "member cluster is not connected",
                }
                continue
            self.ensure_watch(cluster, api_version, kind)
            try:
                obj = prepare_for_member(
                    template, interpreter, replicas, cluster, key, assignment=assignment or None
                )
                if deps is None:
                    deps = self._dependencies(template, interpreter)
                member_deps = [prepare_for_member(d, None, None, cluster, key) for d in deps]
                applied_hash = digest([obj, *member_deps])
                if record.get("appliedHash") not in (None, applied_hash):
                    # A copy applied before pod templates were labelled keeps its unlabelled
                    # templates while nothing else changes: no rollout (and no refused update of
                    # an immutable Job template) just because Flotilla was upgraded.
                    legacy = prepare_for_member(
                        template,
                        interpreter,
                        replicas,
                        cluster,
                        key,
                        assignment=assignment or None,
                        pod_labels=False,
                    )
                    if digest([legacy, *member_deps]) == record["appliedHash"]:
                        obj, applied_hash = legacy, record["appliedHash"]
                if not self._needs_apply(cluster, api_version, kind, key[0], name, record, applied_hash):
                    continue
                started = time.perf_counter()
                if key[0] and (cluster, key[0]) not in self._namespaces:
                    client.ensure_namespace(key[0])
                    self._namespaces.add((cluster, key[0]))
                for dep in member_deps:
                    client.apply(dep, FIELD_MANAGER)
                stored = client.apply(obj, FIELD_MANAGER)
                metrics.DISPATCHED.labels(cluster=cluster).inc()
                metrics.PROPAGATION_ATTEMPTS.labels(cluster=cluster, result="applied").inc()
                metrics.PROPAGATION.labels(cluster=cluster).observe(time.perf_counter() - started)
                results[cluster] = {
                    "clusterName": cluster,
                    **{k: v for k, v in record.items() if k not in APPLIED_FIELDS and k != "clusterName"},
                    "applied": True,
                    "appliedGeneration": int(stored["metadata"].get("generation") or 0),
                    "memberUID": stored["metadata"].get("uid"),
                    "appliedTime": now(),
                    "appliedHash": applied_hash,
                }
            except APPLY_ERRORS as exc:
                # ValueError: the template could not be made into a copy for this member.
                why = "InterpreterError" if isinstance(exc, ValueError) else failure_reason(exc)
                metrics.PROPAGATION_ATTEMPTS.labels(cluster=cluster, result="failed").inc()
                metrics.PROPAGATION_FAILURES.labels(cluster=cluster, reason=why).inc()
                detail = getattr(exc, "body", None) or str(exc)
                results[cluster] = {
                    **record,
                    "applied": False,
                    "appliedMessage": f"apply failed ({why}): {str(detail)[:500]}",
                }
                self._namespaces.discard((cluster, key[0]))
        stub = object_ref(api_version, kind, name, key[0])
        for cluster in sorted(stray):
            results[cluster] = self._delete_copy(cluster, stub, records.get(cluster))
        return results

    def _needs_apply(
        self,
        cluster: str,
        api_version: str,
        kind: str,
        ns: str,
        name: str,
        record: Mapping[str, Any],
        applied_hash: str,
    ) -> bool:
        if not record.get("applied") or record.get("appliedHash") != applied_hash:
            return True
        known, copy = self.copies.get(cluster, api_version, kind, ns, name)
        if not known:
            return False  # the member's watch has not listed yet: trust the record; its list will tell
        if copy is None:
            return True  # deleted on the member
        meta = copy["metadata"]
        return bool(
            meta.get("uid") != record.get("memberUID")
            or int(meta.get("generation") or 0) != int(record.get("appliedGeneration") or 0)
        )

    def _delete_copy(
        self, cluster: str, stub: dict[str, Any], record: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        client = self.member_client(cluster)
        base = record or {"clusterName": cluster}
        if client is None:
            return {
                **base,
                "applied": False,
                "appliedMessage": "pending removal: member cluster is not connected",
            }
        if not self.member_ready(cluster):
            # A lost member (failover): its copy is removed as soon as it is Ready again (that
            # re-queues every binding recorded there), not retried against a dead API server.
            return {
                **base,
                "applied": False,
                "appliedMessage": "pending removal: member cluster is not ready",
            }
        try:
            client.delete(stub)
        except CLIENT_ERRORS as exc:
            return {**base, "applied": False, "appliedMessage": f"pending removal: {str(exc)[:300]}"}
        return None

    def _dependencies(self, template: Mapping[str, Any], interpreter: Interpreter) -> list[dict[str, Any]]:
        out = []
        ns = template["metadata"].get("namespace")
        for dep_kind, dep_name in dependencies(template, interpreter):
            try:
                obj = self.hub.get("v1", dep_kind, dep_name, ns)
            except ApiException as exc:
                if exc.status != 403:
                    raise
                # The chart grants Secrets cluster-wide only with rbac.readWorkloadSecrets: the
                # copy goes without it, once said per workload and Secret.
                seen = (str(template["metadata"].get("uid")), dep_kind, dep_name)
                if seen not in self._unreadable:
                    self._unreadable.add(seen)
                    self.emit(
                        template,
                        "Warning",
                        "DependencyNotPropagated",
                        f"{dep_kind} {ns}/{dep_name} is not propagated: the operator may not read it on "
                        "the hub (chart value rbac.readWorkloadSecrets); create it on the member clusters",
                    )
                continue
            if obj is not None:
                out.append(obj)
        return out

    # ------------------------------------------------------------------- status
    def records_of(self, key: Key, binding: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """What is applied where: the binding's recorded items, updated by what is not recorded yet."""
        items = status_items(binding)
        for cluster, record in self._unrecorded.get(key, {}).items():
            if record is None:
                items.pop(cluster, None)
            else:
                items[cluster] = record
        return items

    def compose(self, key: Key, binding: Mapping[str, Any]) -> Composed:
        """The binding status propagation owns, for the status controller's next write: the items
        with the applied records not written yet, the decision's fields and conditions."""
        meta = binding["metadata"]
        generation = int(meta.get("generation") or 0)
        status = binding.get("status") or {}
        items = status_items(binding)
        taken = dict(self._unrecorded.get(key, {}))
        for cluster, record in taken.items():
            if record is None:
                items.pop(cluster, None)
            else:
                # Keep what the status controller wrote (health, observed status) in the item.
                kept = {k: v for k, v in items.get(cluster, {}).items() if k not in APPLIED_FIELDS}
                items[cluster] = {**kept, **{k: v for k, v in record.items() if k in APPLIED_FIELDS}}
                items[cluster]["clusterName"] = cluster
                if record.get("applied"):
                    items[cluster].pop("appliedMessage", None)
        chosen = targets(binding) if decided(binding) else {}
        conditions = list(status.get("conditions") or [])
        fields: dict[str, Any] = {}
        decision = self._decisions.get(key)
        if decision is not None and decision.generation != generation:
            self._decisions.pop(key, None)  # a note about an older generation of the binding
            decision = None
        if decided(binding) and (
            decision is not None or status.get("schedulerObservedGeneration") != generation
        ):
            reason = "Scheduled"
            if decision is not None:
                message, reason = decision.message, decision.reason
                fields.update(explanation=decision.explanation, lastScheduledTime=decision.time)
            else:  # decided by an earlier run of the operator, which stopped before recording it
                message = f"scheduled to {summary_of(binding['spec']['clusters'])}"
                evicted = describe_tasks(tasks_of(binding))
                if evicted:  # (or a task changed): the decision still says why it moved
                    message, reason = f"{message}; {evicted}", "Evicted"
            conditions = with_condition(conditions, "Scheduled", True, reason, message, generation)
            fields.update(
                schedulerObservedGeneration=generation,
                clustersSummary=summary_of(binding["spec"]["clusters"]),
            )
        if chosen:
            failed = {
                c: items.get(c, {}).get("appliedMessage", "not applied")
                for c in chosen
                if not items.get(c, {}).get("applied")
            }
            keeping = kept_clusters(binding)  # old copies an eviction task keeps for now
            pending_removal = {
                c: i.get("appliedMessage", "")
                for c, i in items.items()
                if c not in chosen and c not in keeping
            }
            ok = not failed and not pending_removal
            message = (
                "applied to " + ",".join(sorted(chosen))
                if ok
                else "; ".join(f"{c}: {m}" for c, m in sorted({**failed, **pending_removal}.items()))
            )
            conditions = with_condition(
                conditions, "FullyApplied", ok, "Applied" if ok else "ApplyFailed", message, generation
            )
        return Composed(items, fields, conditions, taken, decision)

    def committed(self, key: Key, composed: Composed) -> None:
        """The status write carrying ``composed`` succeeded: forget what it recorded."""
        pending = self._unrecorded.get(key)
        if pending is not None:
            for cluster, record in composed.taken.items():
                if pending.get(cluster) is record:
                    del pending[cluster]
            if not pending:
                del self._unrecorded[key]
        if composed.decision is not None and self._decisions.get(key) is composed.decision:
            del self._decisions[key]

    # ------------------------------------------------------------------ removal
    async def _remove_all(self, key: Key, binding: Mapping[str, Any] | None) -> None:
        """The binding is gone (or going): remove every copy it has anywhere."""
        self._decisions.pop(key, None)
        self._unrecorded.pop(key, None)
        self._failures.pop(key, None)
        last = binding or self.tombstones.get(key)
        refs = self.copies.copies_of(key)
        if last is not None:
            resource = last["spec"]["resource"]
            refs |= {
                (cluster, resource["apiVersion"], resource["kind"], key[0], resource["name"])
                for cluster in set(targets(last)) | set(status_items(last))
            }
        if not refs:
            self.tombstones.pop(key, None)
            return
        if binding is None and last is None:
            # Only the member watch knows these copies: make sure the binding is really gone
            # before deleting (an orphan check after a cold start).
            live = await asyncio.to_thread(
                self.hub.get, BINDING_API_VERSION, "ResourceBinding", key[1], key[0] or None
            )
            if live is not None:
                self.state.put_binding(live)
                await self.reconcile(key)
                return
            log.info("removing orphaned copies of deleted binding %s/%s: %s", key[0], key[1], sorted(refs))
        errors = await asyncio.to_thread(self._delete_all, refs)
        if errors:
            raise RuntimeError("could not remove every copy: " + "; ".join(errors))
        self.tombstones.pop(key, None)

    def _delete_all(self, refs: set[CopyRef]) -> list[str]:
        errors = []
        for cluster, api_version, kind, ns, name in sorted(refs):
            result = self._delete_copy(cluster, object_ref(api_version, kind, name, ns), None)
            if result is not None:
                errors.append(f"{cluster}: {result['appliedMessage']}")
        return errors


def object_ref(api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """A reference object, enough to delete it."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace or None},
    }


def _gvk(binding: Mapping[str, Any]) -> tuple[str, str]:
    resource = binding["spec"]["resource"]
    return str(resource["apiVersion"]), str(resource["kind"])
