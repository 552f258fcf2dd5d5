"""The operator's /metrics scraped over HTTP during a run on the rig: each series says what happened.

One operator (serving /metrics on a free port) and one namespace with a FederatedResourceQuota:

1. a placement: a Deployment pinned to member a is placed, applied and runs;
2. a wait for capacity: a filler takes every GPU of member b, a second Deployment pinned to b
   waits (NoClusterFits, rejected by NodeResourcesFit), and is placed once the filler is deleted;
3. a propagation failure: member c's kube-apiserver is stopped and a Deployment pinned to c is
   placed there and cannot be applied (Unreachable). The operator runs with a failure threshold
   of 1000 probes, so it does not turn c NotReady and the decision really goes to the dead API
   server: what happens in the seconds before a real loss is noticed. c is started again after.

Counters are compared with a scrape taken before (the registry is the test process's, shared with
the other e2e modules). Stops a process the rig started: local rig only.
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BACKEND, Fleet
from operator_support import (
    GROUP_VERSION,
    WAIT,
    binding,
    condition_of,
    fleet_operator,
    gpu_deployment,
    new_namespace,
)
from prometheus_client.parser import text_string_to_metric_families

from flotilla import kube
from flotilla.metrics import PROFILE
from flotilla.rig.cluster import ClusterHandle

pytestmark = pytest.mark.skipif(BACKEND == "kind", reason="stops a member's API server: local rig only")

Sample = tuple[str, tuple[tuple[str, str], ...]]
B_MODEL = "NVIDIA-A100-SXM4-40GB"  # member b: 12 nodes of 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scraper:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.families: set[str] = set()

    def scrape(self) -> dict[Sample, float]:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            text = response.read().decode()
        out: dict[Sample, float] = {}
        for family in text_string_to_metric_families(text):
            self.families.add(family.name)
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def get(samples: dict[Sample, float], metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[Sample, float], metric: str, **labels: str) -> float:
    """The sum over every series of ``metric`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= set(ls))


@pytest.fixture(scope="module")
def scraper(hub: ClusterHandle, members: dict[str, ClusterHandle]) -> Iterator[Scraper]:
    port = free_port()
    with fleet_operator(
        hub, members, FLOTILLA_METRICS_PORT=str(port), FLOTILLA_MEMBER_FAILURE_THRESHOLD="1000"
    ):
        yield Scraper(port)


def pinned(ns: str, name: str, cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
            "placement": {
                "clusterAffinity": {"clusterNames": [cluster]},
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Aggregated",
                },
            },
        },
    }


def test_metrics_tell_a_placement_a_wait_and_a_failed_propagation(
    scraper: Scraper, fleet: Fleet, hub: ClusterHandle, members: dict[str, ClusterHandle]
) -> None:
    assert fleet.rig is not None
    api = hub.api_client()
    ns = new_namespace(hub, "metrics")
    quota = {
        "apiVersion": GROUP_VERSION,
        "kind": "FederatedResourceQuota",
        "metadata": {"name": "gpus", "namespace": ns},
        "spec": {"overall": {"nvidia.com/gpu": "200"}},
    }
    kube.apply(api, quota)
    for name, cluster in (("web", "a"), ("filler", "b"), ("waiter", "b"), ("lost", "c")):
        kube.apply(api, pinned(ns, name, cluster))
    before = scraper.scrape()

    def delta(metric: str, **labels: str) -> float:
        return total(scraper.scrape(), metric, **labels) - total(before, metric, **labels)

    try:
        # 1. A placement that runs.
        kube.apply(api, gpu_deployment(ns, "web", replicas=2, gpus=1))
        kube.wait_for(
            lambda: delta("flotilla_scheduled_until_ready_wait_time_seconds_count", cluster="a") >= 1,
            timeout=WAIT,
            what="web's copy on a healthy (scheduled_until_ready observed)",
        )
        # 2. A wait for capacity: the filler takes every GPU of b still free (earlier tests on the
        # shared rig may hold some), one per pod so none is left over; the waiter waits.
        free_b = int(get(scraper.scrape(), "flotilla_cluster_gpu_free", cluster="b", gpu_model=B_MODEL))
        kube.apply(api, gpu_deployment(ns, "filler", replicas=free_b, gpus=1))
        kube.wait_for(
            lambda: get(scraper.scrape(), "flotilla_cluster_gpu_free", cluster="b", gpu_model=B_MODEL) == 0,
            timeout=WAIT,
            what="member b's GPUs all allocated",
        )
        kube.apply(api, gpu_deployment(ns, "waiter", replicas=1, gpus=4))
        waiting_since = time.time()
        kube.wait_for(
            lambda: get(scraper.scrape(), "flotilla_pending_workloads", reason="NoClusterFits") == 1,
            timeout=WAIT,
            what="the waiter pending",
        )
        waiting = scraper.scrape()
        assert (
            get(waiting, "flotilla_unschedulable_workloads", plugin="NodeResourcesFit", profile=PROFILE) == 1
        )
        assert get(waiting, "flotilla_cluster_gpu_free", cluster="b", gpu_model=B_MODEL) == 0
        assert get(waiting, "flotilla_cluster_gpu_allocatable", cluster="b", gpu_model=B_MODEL) == 48
        assert total(waiting, "flotilla_schedule_attempts_total", result="unschedulable") > total(
            before, "flotilla_schedule_attempts_total", result="unschedulable"
        )
        waiter = condition_of(binding(hub, ns, "waiter-deployment"), "Scheduled")
        assert waiter is not None and waiter["status"] == "False" and waiter["reason"] == "NoClusterFits"
        kube.delete(api, gpu_deployment(ns, "filler"))
        kube.wait_for(
            lambda: (
                (condition_of(binding(hub, ns, "waiter-deployment"), "Scheduled") or {}).get("status")
                == "True"
            ),
            timeout=WAIT,
            what="the waiter placed once the filler is gone",
        )
        waited = time.time() - waiting_since
        placed = scraper.scrape()
        assert get(placed, "flotilla_pending_workloads", reason="NoClusterFits") == 0
        assert (
            get(placed, "flotilla_unschedulable_workloads", plugin="NodeResourcesFit", profile=PROFILE) == 0
        )
        # First placements of web, filler and waiter; the waiter's wait counts whole (the
        # creation timestamp has a one-second resolution).
        waits = total(placed, "flotilla_admission_wait_time_seconds_count") - total(
            before, "flotilla_admission_wait_time_seconds_count"
        )
        assert waits >= 3
        wait_sum = total(placed, "flotilla_admission_wait_time_seconds_sum") - total(
            before, "flotilla_admission_wait_time_seconds_sum"
        )
        assert wait_sum >= waited - 2.0, (wait_sum, waited)
        kube.wait_for(  # web 2 and the waiter 4 (the filler's 48 are given back)
            lambda: (
                get(
                    scraper.scrape(),
                    "flotilla_quota_used",
                    namespace=ns,
                    name="gpus",
                    resource="nvidia.com/gpu",
                )
                == 6
            ),
            timeout=WAIT,
            what="the quota's usage: 6 GPUs",
        )

        # 3. A propagation failure: c's API server is stopped.
        fleet.rig.stop_component("c", "kube-apiserver")
        try:
            kube.apply(api, gpu_deployment(ns, "lost", replicas=1, gpus=1))
            kube.wait_for(
                lambda: delta("flotilla_propagation_failures_total", cluster="c", reason="Unreachable") >= 1,
                timeout=WAIT,
                what="a propagation failure to c counted",
            )
            kube.wait_for(
                lambda: (
                    "Unreachable"
                    in (condition_of(binding(hub, ns, "lost-deployment"), "FullyApplied") or {}).get(
                        "message", ""
                    )
                ),
                timeout=WAIT,
                what="the binding's FullyApplied condition naming the failure",
            )
            failed = scraper.scrape()
        finally:
            fleet.rig.start_component("c", "kube-apiserver")
    finally:
        for name in ("web", "filler", "waiter", "lost"):
            with contextlib.suppress(Exception):
                kube.delete(api, gpu_deployment(ns, name))

    def grew(metric: str, **labels: str) -> float:
        return total(failed, metric, **labels) - total(before, metric, **labels)

    # What happened, series by series.
    assert grew("flotilla_schedule_attempts_total", result="scheduled", profile=PROFILE) >= 4
    assert grew("flotilla_schedule_attempts_total", result="unschedulable", profile=PROFILE) >= 1
    assert grew("flotilla_scheduling_attempt_duration_seconds_count", profile=PROFILE) >= 5
    assert grew("flotilla_scheduling_algorithm_duration_seconds_count", profile=PROFILE) >= 5
    assert get(failed, "flotilla_schedule_attempts_total", result="error", profile=PROFILE) >= 0  # (a series)
    # The operator's first attempt is sampled: every PreFilter plugin ran and was timed.
    assert (
        total(
            failed, "flotilla_framework_extension_point_duration_seconds_count", extension_point="PreFilter"
        )
        >= 1
    )
    assert total(failed, "flotilla_plugin_execution_duration_seconds_count", plugin="ClusterAffinity") >= 1
    assert grew("flotilla_propagation_attempts_total", cluster="a", result="applied") >= 1
    assert grew("flotilla_propagation_duration_seconds_count", cluster="a") >= 1
    assert grew("flotilla_propagation_attempts_total", cluster="b", result="applied") >= 2
    assert grew("flotilla_propagation_attempts_total", cluster="c", result="failed") >= 1
    assert grew("flotilla_propagation_failures_total", cluster="c", reason="Unreachable") >= 1
    assert grew("flotilla_member_api_errors_total", cluster="c", reason="Unreachable") >= 1
    assert grew("flotilla_member_api_request_duration_seconds_count", cluster="c") >= 1
    assert grew("flotilla_member_api_request_duration_seconds_count", cluster="a", verb="apply") >= 1
    assert grew("flotilla_scheduled_until_ready_wait_time_seconds_count", cluster="a") >= 1
    # flotilla_cluster_probe_failures_total{cluster="c"} is not asserted: whether a 2 s probe falls
    # inside the window c is down is a race (it failed a run on 2026-12-03).
    assert get(failed, "flotilla_cluster_ready", cluster="c") == 1  # the threshold: never NotReady
    for member in ("a", "b", "c"):
        assert get(failed, "flotilla_cluster_ready", cluster=member) == 1
    assert get(failed, "flotilla_quota_hard", namespace=ns, name="gpus", resource="nvidia.com/gpu") == 200
    assert "flotilla_failovers" in scraper.families  # (exercised by test_failover.py)
    events = kube.list_objects(api, "v1", "Event", ns)
    told = {(e["involvedObject"].get("name"), e.get("reason")) for e in events}
    for expected in (
        ("web", "Scheduled"),
        ("web", "Applied"),
        ("waiter", "FailedScheduling"),
        ("waiter", "Scheduled"),
        ("lost", "ApplyFailed"),
    ):
        assert expected in told, sorted(told)
