"""Quota admission latency on the local rig: 50 applies fired at once against a 64-GPU quota.

Issue #9's figure: the time the hub API server takes to answer an apply (create) when the
operator's FederatedResourceQuota webhook is in the path, p50/p99 over 50 concurrent creates,
beside the same burst with no webhook registered (the API server alone) and with the webhook
but no quota in the namespace. Also printed: the webhook's own handling time (from the
operator's ``flotilla_quota_admission_duration_seconds`` histogram, bucket resolution) and the
charge conflicts the burst caused.

    .venv/bin/python benchmarks/bench_quota_admission.py [--applies 50] [--rounds 3]

A bare hub (no members) is enough: admission does not depend on placement. The operator runs as
its own process (``python -m flotilla``) exactly as the rig's demo starts it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes.client import ApiException

from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.rig import demo
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.fleet import parse_fleet
from flotilla.rig.runner import Rig

GPU = "nvidia.com/gpu"


def deployment(ns: str, i: int) -> dict[str, Any]:
    name = f"d-{i:03d}"
    pod = {
        "containers": [
            {"name": "c", "image": "x", "resources": {"requests": {GPU: "8"}, "limits": {GPU: "8"}}}
        ]
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }


def burst(hub: ClusterHandle, ns: str, n: int) -> tuple[list[float], int]:
    """Create n Deployments from n threads released together; (latency of each, how many admitted)."""
    clients = [hub.api_client() for _ in range(n)]
    gate = threading.Barrier(n)
    latencies: list[float] = [0.0] * n
    admitted = [False] * n

    def one(i: int) -> None:
        doc = deployment(ns, i)
        path = f"/apis/apps/v1/namespaces/{ns}/deployments"
        kube.request(clients[i], "GET", f"/api/v1/namespaces/{ns}")  # warm the connection
        gate.wait()
        started = time.perf_counter()
        try:
            kube.request(clients[i], "POST", path, doc, "application/json")
            admitted[i] = True
        except ApiException as exc:
            if exc.status != 403:
                raise
        latencies[i] = time.perf_counter() - started

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, sum(admitted)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def histogram(port: int, name: str) -> tuple[list[tuple[float, float]], float]:
    """Cumulative buckets (le, count) summed over label sets, and the total count."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
    ordered = sorted(buckets.items())
    return ordered, (ordered[-1][1] if ordered else 0.0)


def bucket_quantile(buckets: list[tuple[float, float]], total: float, q: float) -> float:
    """The upper bound of the bucket holding quantile q (what the histogram can say)."""
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def counter(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--applies", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="bursts per setting (latencies pooled)")
    args = parser.parse_args()
    fleet = parse_fleet({"hub": {"name": "hub", "controllers": False}, "members": []})
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(fleet=fleet, workdir=Path(tmp), verbose=False).up()
        operator = None
        try:
            assert rig.hub is not None
            hub = rig.hub
            api = hub.api_client()
            kube.install_crds(api, demo.flotilla_crds())
            results: dict[str, list[float]] = {}

            def run(label: str, quota: bool) -> None:
                pooled: list[float] = []
                for r in range(args.rounds):
                    ns = f"bench-{label}-{r}"
                    kube.ensure_namespace(api, ns)
                    if quota:
                        kube.apply(
                            api,
                            {
                                "apiVersion": GROUP_VERSION,
                                "kind": "FederatedResourceQuota",
                                "metadata": {"name": "gpus", "namespace": ns},
                                "spec": {"overall": {GPU: 64}},
                            },
                        )
                        kube.wait_for(
                            partial(
                                lambda n: (
                                    (kube.get(api, GROUP_VERSION, "FederatedResourceQuota", "gpus", n) or {})
                                    .get("status", {})
                                    .get("observedGeneration")
                                    is not None
                                ),
                                ns,
                            ),
                            timeout=60,
                            what="the quota's status",
                        )
                    latencies, admitted = burst(hub, ns, args.applies)
                    if quota and admitted != 64 // 8:
                        raise SystemExit(f"{label}: {admitted} admitted, expected {64 // 8}")
                    pooled += latencies
                results[label] = pooled

            run("no-webhook", quota=False)
            metrics_port = free_port()
            os.environ["FLOTILLA_METRICS_PORT"] = str(metrics_port)
            operator = demo.start_operator(hub, Path(tmp) / "operator.log")
            cfg = ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", demo.WEBHOOK_CONFIG)
            kube.wait_for(
                lambda: (kube.get(api, *cfg) or {}).get("webhooks"), timeout=120, what="the webhook"
            )
            time.sleep(2)  # the API server picks up the new configuration
            run("webhook-no-quota", quota=False)
            run("webhook-quota", quota=True)
            buckets, total = histogram(metrics_port, "flotilla_quota_admission_duration_seconds")
            conflicts = counter(metrics_port, "flotilla_quota_charge_conflicts_total")
        finally:
            if operator is not None:
                operator.terminate()
                try:
                    operator.wait(30)
                except subprocess.TimeoutExpired:
                    operator.kill()
            rig.down()
    n = args.applies
    print(
        f"quota admission, {n} creates at once x {args.rounds} rounds (create latency as the client sees it)"
    )
    print(f"{'setting':<20} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, values in results.items():
        p50, p99, top = statistics.median(values) * 1000, pct(values, 0.99) * 1000, max(values) * 1000
        print(f"{label:<20} {p50:>8.1f} {p99:>8.1f} {top:>8.1f}")
    base = statistics.median(results["no-webhook"])
    print(
        f"webhook with quota adds p50 {(statistics.median(results['webhook-quota']) - base) * 1000:.1f} ms "
        f"({statistics.median(results['webhook-quota']) / base:.2f}x the API server alone)"
    )
    p50, p99 = (bucket_quantile(buckets, total, q) * 1000 for q in (0.5, 0.99))
    print(
        f"webhook handling time (operator histogram, {int(total)} reviews): p50 <= {p50:.1f} ms, "
        f"p99 <= {p99:.1f} ms; charge conflicts retried: {int(conflicts)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
