"""Restarting the operator mid-way loses and duplicates nothing (level-triggered reconciliation)."""

from __future__ import annotations

from operator_support import (
    GROUP_VERSION,
    WAIT,
    binding,
    gpu_deployment,
    install_flotilla_crds,
    member_ready,
    new_namespace,
    register_member,
    running_operator,
    workload_story,
)
from test_operator import _policy, _replicas_on

from flotilla import kube
from flotilla.rig.cluster import ClusterHandle


def test_operator_restart_loses_and_duplicates_nothing(
    hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    install_flotilla_crds(hub)
    for member in members.values():
        register_member(hub, member)
    api = hub.api_client()
    ns = new_namespace(hub, "restart")
    placement = {
        "clusterAffinity": {"clusterNames": ["a", "b"]},
        "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"},
    }
    names = [f"svc-{i}" for i in range(6)]
    with running_operator(hub):
        for name in members:
            kube.wait_for(lambda n=name: member_ready(hub, n), timeout=WAIT, what=f"member {name} Ready")
        for name in names:
            kube.apply(api, _policy(ns, name, "Deployment", "apps/v1", placement))
            kube.apply(api, gpu_deployment(ns, name, 2))
        # Stop the operator while the workloads are being placed ...
    # ... then start a new one.
    with running_operator(hub):

        def wait_replicas(name: str, replicas: int, what: str) -> None:
            try:
                kube.wait_for(
                    lambda: sum(_replicas_on(members, ns, name).values()) == replicas, timeout=WAIT, what=what
                )
            except TimeoutError as exc:  # say where it stuck
                raise AssertionError(f"{exc}\n{workload_story(hub, members, ns, name)}") from exc

        for name in names:
            wait_replicas(name, 2, f"{name}: exactly 2 replicas across the members after the restart")
        kube.apply(api, gpu_deployment(ns, names[0], 4))
        wait_replicas(names[0], 4, "a change made after the restart to be propagated")
        for name in names:
            placed = _replicas_on(members, ns, name)
            rb = binding(hub, ns, f"{name}-deployment")
            assert rb is not None
            decided = {c["name"]: c["replicas"] for c in rb["spec"]["clusters"]}
            assert placed == decided, (name, placed, decided)
            kube.delete(api, gpu_deployment(ns, name, 1))
        for name in names:
            kube.wait_for(
                lambda n=name: _replicas_on(members, ns, n) == {}, timeout=WAIT, what=f"{name} removed"
            )


def test_orphaned_copy_removed_after_start(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> None:
    """A binding deleted while the operator was down leaves copies on members; the next start removes them.
    So does a template deleted while it was down (its binding stays behind and no event will name it)."""
    install_flotilla_crds(hub)
    for member in members.values():
        register_member(hub, member)
    api = hub.api_client()
    ns = new_namespace(hub, "orphan")
    placement = {"clusterAffinity": {"clusterNames": ["b"]}}
    with running_operator(hub):
        kube.apply(api, _policy(ns, "orphan", "Deployment", "apps/v1", placement))
        kube.apply(api, _policy(ns, "kept", "Deployment", "apps/v1", placement))
        kube.apply(api, gpu_deployment(ns, "orphan", 1))
        kube.apply(api, gpu_deployment(ns, "kept", 1))
        kube.apply(api, _policy(ns, "untemplated", "Deployment", "apps/v1", placement))
        kube.apply(api, gpu_deployment(ns, "untemplated", 1))
        for name in ("orphan", "kept", "untemplated"):
            kube.wait_for(
                lambda n=name: _replicas_on(members, ns, n) == {"b": 1}, timeout=WAIT, what=f"{name} on b"
            )
    kept_uid = kube.get(members["b"].api_client(), "apps/v1", "Deployment", "kept", ns)["metadata"]["uid"]  # type: ignore[index]
    # The operator is down: the template and its binding go, the copy on b stays behind.
    kube.delete(api, _policy(ns, "orphan", "Deployment", "apps/v1", placement))
    kube.delete(api, gpu_deployment(ns, "orphan", 1))
    kube.delete(
        api,
        {
            "apiVersion": GROUP_VERSION,
            "kind": "ResourceBinding",
            "metadata": {"name": "orphan-deployment", "namespace": ns},
        },
        wait=WAIT,
    )
    assert _replicas_on(members, ns, "orphan") == {"b": 1}
    kube.delete(api, gpu_deployment(ns, "untemplated", 1), wait=WAIT)
    with running_operator(hub):
        kube.wait_for(
            lambda: _replicas_on(members, ns, "orphan") == {}, timeout=WAIT, what="the orphaned copy removed"
        )
        kube.wait_for(
            lambda: (
                _replicas_on(members, ns, "untemplated") == {}
                and kube.get(api, GROUP_VERSION, "ResourceBinding", "untemplated-deployment", ns) is None
            ),
            timeout=WAIT,
            what="the binding and copy of a template deleted while down removed",
        )
        copy = kube.get(members["b"].api_client(), "apps/v1", "Deployment", "kept", ns)
        assert copy is not None and copy["metadata"]["uid"] == kept_uid  # untouched, not recreated
        kube.delete(api, gpu_deployment(ns, "kept", 1))
        try:
            kube.wait_for(lambda: _replicas_on(members, ns, "kept") == {}, timeout=WAIT, what="kept removed")
        except TimeoutError as exc:  # say where it stuck
            raise AssertionError(f"{exc}\n{workload_story(hub, members, ns, 'kept')}") from exc
