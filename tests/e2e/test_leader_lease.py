"""Leader election against the rig's real hub: one active replica, fast takeover on release and on loss."""

from __future__ import annotations

import asyncio
import uuid

from flotilla import kube
from flotilla.leader import LeaderElector, kube_lease_client
from flotilla.rig.cluster import ClusterHandle


async def test_one_leader_and_fast_takeover(hub: ClusterHandle) -> None:
    api = hub.api_client()
    ns = f"lease-{uuid.uuid4().hex[:5]}"
    kube.ensure_namespace(api, ns)
    leading: dict[str, int] = {"one": 0, "two": 0}

    def elector(identity: str) -> LeaderElector:
        return LeaderElector(
            kube_lease_client(api),
            ns,
            "flotilla-operator",
            identity,
            lease_seconds=3,
            renew_deadline=2,
            retry_period=0.2,
        )

    def callbacks(identity: str):  # type: ignore[no-untyped-def]
        async def started() -> None:
            leading[identity] += 1
            await asyncio.Event().wait()  # work until cancelled

        async def stopped() -> None:
            leading[identity] -= 1

        return started, stopped

    one, two = elector("one"), elector("two")
    task_one = asyncio.create_task(one.run(*callbacks("one")))
    await asyncio.sleep(1.0)
    task_two = asyncio.create_task(two.run(*callbacks("two")))
    await asyncio.sleep(1.5)
    assert (one.is_leader, two.is_leader) == (True, False)
    assert leading == {"one": 1, "two": 0}
    lease = kube.get(api, "coordination.k8s.io/v1", "Lease", "flotilla-operator", ns)
    assert lease is not None and lease["spec"]["holderIdentity"] == "one"

    task_one.cancel()  # a graceful stop releases the Lease: the standby takes over at once
    await asyncio.gather(task_one, return_exceptions=True)
    for _ in range(50):  # leading: the started callback runs as a task once is_leader turns True
        if two.is_leader and leading["two"]:
            break
        await asyncio.sleep(0.1)
    assert two.is_leader and leading == {"one": 0, "two": 1}
    task_two.cancel()
    await asyncio.gather(task_two, return_exceptions=True)
    kube.delete(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
