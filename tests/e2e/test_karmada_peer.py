"""The examples in examples/, applied to real Karmada v1.18 (its apiVersion) and to Flotilla (ours), on the
same rig members: the same placements, or a difference listed (and explained) in DIFFERENCES.

Karmada runs as the peer control plane of :mod:`flotilla.rig.peer` (built by ``make binaries``; a
missing build is built here, as the rig builds its own binaries). Each system gets the examples in
turn: Karmada first (its workloads and policies are deleted again and their member copies waited
away), then Flotilla with its operator. Flotilla-only kinds (PodGroup, InterpreterCustomization,
FederatedResourceQuota's admission) are not given to Karmada; MemberCluster registration is not an
example of placement.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BACKEND, Fleet
from kubernetes.client import ApiException
from operator_support import WAIT, fleet_operator

from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.rig import demo
from flotilla.rig.peer import POLICY_API, WORK_API, KarmadaPeer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        BACKEND == "kind",
        reason="the Karmada peer runs as local processes beside the local rig; not tried with kind members",
    ),
]

POLICY_KINDS = ("PropagationPolicy", "ClusterPropagationPolicy")
FLOTILLA_ONLY = ("PodGroup", "InterpreterCustomization", "MemberCluster", "FederatedResourceQuota")
NOT_PLACEMENT = ("member-cluster.yaml", "namespace-gpu-quota.yaml")

# Documents real Karmada refuses at apply (its webhook), with a part of its message, and why.
KARMADA_REJECTS: dict[str, tuple[str, str]] = {
    "ml-training/PropagationPolicy/llama-70b-pretrain": (
        "application failover is set, propagateDeps must be true",
        "Karmada's webhook requires propagateDeps: true with failover.application; Flotilla accepts the "
        "policy and acts on its application failover without it (it does not propagate dependencies: "
        "propagateDeps is accepted and ignored, docs/api-compatibility.md)",
    ),
}
NO_POLICY = "(no policy)"
# workload -> (Karmada's placement, Flotilla's placement, why they differ). Placements are
# "cluster:replicas" sorted by cluster ("" = no cluster fits; NO_POLICY: no accepted policy selects it).
DIFFERENCES: dict[str, tuple[str, str, str]] = {
    "ml-training/PyTorchJob/llama-70b-pretrain": (
        NO_POLICY,
        "a:0",
        "its policy is refused by Karmada (KARMADA_REJECTS), so Karmada leaves the job unplaced",
    ),
    "ray/RayCluster/rllib-cluster": (
        "b:0",
        "b:4",
        "the same cluster; Karmada's built-in RayCluster interpreter has a componentResource but no "
        "replicaResource, so its binding records 0 replicas (the whole object goes to b), while the "
        "example's InterpreterCustomization teaches Flotilla the 4 workers (replicaPath)",
    ),
}


def _examples() -> list[tuple[str, list[dict[str, Any]]]]:
    return [(p.name, docs) for p, docs in demo.example_documents() if p.name not in NOT_PLACEMENT]


def _as_karmada(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    if out["kind"] in POLICY_KINDS:
        out["apiVersion"] = POLICY_API
    return out


def _workloads() -> list[dict[str, Any]]:
    return [
        d
        for _, docs in _examples()
        for d in docs
        if d["kind"] not in (*POLICY_KINDS, *FLOTILLA_ONLY, "Namespace")
        and not d["apiVersion"].startswith("flotilla")
    ]


def _key(doc: dict[str, Any]) -> str:
    return f"{doc['metadata'].get('namespace', '')}/{doc['kind']}/{doc['metadata']['name']}"


def _placement(api: Any, binding_api: str, workload: dict[str, Any]) -> str | None:
    """'cluster:replicas,...' once the system decided (possibly ''), None while it has not."""
    meta = workload["metadata"]
    for binding in kube.list_objects(api, binding_api, "ResourceBinding", meta.get("namespace")):
        res = binding["spec"].get("resource") or {}
        if res.get("kind") != workload["kind"] or res.get("name") != meta["name"]:
            continue
        clusters = binding["spec"].get("clusters") or []
        if clusters:
            return ",".join(
                f"{c['name']}:{c.get('replicas', 0)}" for c in sorted(clusters, key=lambda c: c["name"])
            )
        conds = (binding.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Scheduled" and c["status"] == "False" for c in conds):
            return ""
    return None


def _copies_on(members: dict[str, Any], workload: dict[str, Any]) -> set[str]:
    """The members holding a copy (a member that does not serve the kind holds none)."""
    meta = workload["metadata"]
    out = set()
    for name, member in members.items():
        api = member.api_client()
        try:
            obj = kube.get(api, workload["apiVersion"], workload["kind"], meta["name"], meta.get("namespace"))
        except LookupError:
            continue
        if obj:
            out.add(name)
    return out


def _wait_placements(
    api: Any, binding_api: str, members: dict[str, Any], what: str, unpolicied: tuple[str, ...] = ()
) -> dict[str, str]:
    out: dict[str, str] = {}
    for workload in _workloads():
        if _key(workload) in unpolicied:
            continue

        def decided(w: dict[str, Any] = workload) -> str | bool:
            placed = _placement(api, binding_api, w)
            if placed is None:
                return False
            # Decided, and the copies are where the decision says (none when nothing fits).
            wanted = {p.split(":")[0] for p in placed.split(",") if p}
            return placed or "-" if _copies_on(members, w) == wanted else False

        result = kube.wait_for(decided, timeout=WAIT, interval=1.0, what=f"{what}: {_key(workload)} placed")
        out[_key(workload)] = "" if result == "-" else str(result)
    return out


@pytest.fixture(scope="module")
def karmada(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KarmadaPeer]:
    assert fleet.rig is not None
    crds = [demo.thirdparty_dir() / f for f in fleet.rig.fleet.hub.third_party_crds]
    peer = KarmadaPeer(workdir=tmp_path_factory.mktemp("karmada"), members=fleet.members, extra_crds=crds)
    peer.up()
    try:
        yield peer
    finally:
        peer.down()


def test_examples_place_the_same_on_karmada_and_flotilla(fleet: Fleet, karmada: KarmadaPeer) -> None:
    k_api = karmada.api.api_client()
    karmada_docs = [_as_karmada(d) for _, docs in _examples() for d in docs if d["kind"] not in FLOTILLA_ONLY]
    rejected: dict[str, str] = {}
    for doc in karmada_docs:
        try:
            kube.apply(k_api, doc)
        except ApiException as exc:
            rejected[_key(doc)] = str(exc.body)
    assert set(rejected) == set(KARMADA_REJECTS), rejected
    for key, (message, _why) in KARMADA_REJECTS.items():
        assert message in rejected[key]
    unpolicied = tuple(k for k, (karmada_side, _, _) in DIFFERENCES.items() if karmada_side == NO_POLICY)
    on_karmada = _wait_placements(k_api, WORK_API, fleet.members, "Karmada", unpolicied)
    for workload in _workloads():
        if _key(workload) in unpolicied:  # decided by now for the others: still no binding, no copy
            assert _placement(k_api, WORK_API, workload) is None
            assert not _copies_on(fleet.members, workload)
            on_karmada[_key(workload)] = NO_POLICY
    for doc in reversed(karmada_docs):
        if doc["kind"] != "Namespace":
            kube.delete(k_api, doc)
    for workload in _workloads():
        kube.wait_for(
            lambda w=workload: not _copies_on(fleet.members, w),
            timeout=WAIT,
            interval=1.0,
            what=f"Karmada's copies of {_key(workload)} removed",
        )

    hub_api = fleet.hub.api_client()
    with fleet_operator(fleet.hub, fleet.members):
        for _, docs in _examples():
            for doc in docs:
                kube.apply(hub_api, doc)
        on_flotilla = _wait_placements(hub_api, GROUP_VERSION, fleet.members, "Flotilla")
        for _, docs in reversed(_examples()):
            for doc in reversed(docs):
                if doc["kind"] != "Namespace":
                    kube.delete(hub_api, doc)

    print(f"\nKarmada:  {on_karmada}\nFlotilla: {on_flotilla}")
    assert set(on_karmada) == set(on_flotilla)
    for key in sorted(on_karmada):
        if key in DIFFERENCES:
            k, f, why = DIFFERENCES[key]
            assert (on_karmada[key], on_flotilla[key]) == (k, f), (
                f"{key}: the listed difference changed ({why})"
            )
        else:
            assert on_karmada[key] == on_flotilla[key], (
                f"{key}: Karmada {on_karmada[key]!r}, Flotilla {on_flotilla[key]!r}"
            )
