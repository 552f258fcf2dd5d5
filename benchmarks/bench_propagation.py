"""Hub apply -> object present on the member, with N workloads applied at once, on the local rig.

DESIGN.md section 7: p50 under 1 s and p99 under 2 s with 200 workloads applied at once; also
prints the operator's memory. The operator runs as its own process (``python -m flotilla``) so
its RSS is measured alone.

    .venv/bin/python benchmarks/bench_propagation.py            # 200 workloads, fresh rig
    .venv/bin/python benchmarks/bench_propagation.py --quick    # 40 workloads
    .venv/bin/python benchmarks/bench_propagation.py --workloads 2000 --restart

Also printed: the operator's CPU seconds per workload, its idle CPU once everything has
settled, its hub writes per workload (from its own /metrics), and with ``--restart`` an operator
restart over all the bindings: copies recreated, lost and duplicated, and the time back to
steady state (every copy in place and the controllers' queues idle).

Arrival on a member is observed by a watch on the member (not by polling), so each latency is
(first watch event of the copy) - (time the hub answered the apply).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.cli import default_fleet_path
from flotilla.inventory.client import MemberClient
from flotilla.rig import demo
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.fleet import load_fleet
from flotilla.rig.runner import Rig

NS = "bench-propagation"


def deployment(i: int, ns: str = NS) -> dict[str, Any]:
    name = f"w-{i:04d}"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"bench": "propagation"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "10m"}}}]
                },
            },
        },
    }


def policy(ns: str = NS, api_version: str = GROUP_VERSION) -> dict[str, Any]:
    """Every benchmark Deployment, Divided/Aggregated over a, b and c (``api_version`` may be Karmada's
    ``policy.karmada.io/v1alpha1``: the spec is the same)."""
    return {
        "apiVersion": api_version,
        "kind": "PropagationPolicy",
        "metadata": {"name": "all", "namespace": ns},
        "spec": {
            "resourceSelectors": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "labelSelector": {"matchLabels": {"bench": "propagation"}},
                }
            ],
            "placement": {
                "clusterAffinity": {"clusterNames": ["a", "b", "c"]},
                "replicaScheduling": {
                    "replicaSchedulingType": "Divided",
                    "replicaDivisionPreference": "Aggregated",
                },
            },
        },
    }


def watch_arrivals(
    member: ClusterHandle, seen: dict[str, float], stop: threading.Event, ns: str = NS
) -> None:
    client = MemberClient(member.api_client().configuration)
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    version = client.get(path)["metadata"]["resourceVersion"]
    while not stop.is_set():
        try:
            for event in client.watch(
                path, [("resourceVersion", version), ("timeoutSeconds", "30")], timeout=40
            ):
                obj = event["object"]
                version = obj["metadata"].get("resourceVersion", version)
                seen.setdefault(obj["metadata"]["name"], time.monotonic())
        except Exception:
            if stop.is_set():
                return
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """The operator's own /metrics, summed by series name (labels dropped)."""
    import urllib.request

    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, value = line.rsplit(" ", 1)
            name = name.split("{", 1)[0]
            out[name] = out.get(name, 0.0) + float(value)
    return out


def writes_by_controller(port: int) -> dict[str, float]:
    import urllib.request

    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("flotilla_hub_writes_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.split("{", 1)[1].rstrip("}")] = float(value)
    return out


def wait_settled(port: int, quiet: float = 3.0, timeout: float = 300.0) -> float:
    """Seconds until the operator's queues are empty and it has added no key for ``quiet`` s."""
    start = time.monotonic()
    last_adds, since = -1.0, time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            m = scrape(port)
        except OSError:
            time.sleep(0.2)
            continue
        adds = m.get("flotilla_workqueue_adds_total", 0.0)
        if adds != last_adds or m.get("flotilla_workqueue_depth", 0.0) > 0:
            last_adds, since = adds, time.monotonic()
        elif time.monotonic() - since >= quiet and m.get("flotilla_leader", 0.0) == 1:
            return since - start
        time.sleep(0.2)
    raise TimeoutError("the operator did not settle")


def copies(rig: Rig) -> dict[tuple[str, str], str]:
    """{(member, name): uid} of every Deployment copy in the benchmark namespace."""
    out = {}
    for cname, member in rig.members.items():
        for obj in kube.list_objects(member.api_client(), "apps/v1", "Deployment", NS):
            out[(cname, obj["metadata"]["name"])] = obj["metadata"]["uid"]
    return out


def rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="40 workloads")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--restart", action="store_true", help="then restart the operator and check it")
    parser.add_argument("--log", type=Path, help="keep the operator's log here")
    args = parser.parse_args()
    n = 40 if args.quick else args.workloads

    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(fleet=load_fleet(default_fleet_path()), workdir=Path(tmp), verbose=False).up()
        operator = None
        stop = threading.Event()
        try:
            assert rig.hub is not None
            hub = rig.hub
            api = hub.api_client()
            kube.install_crds(api, demo.flotilla_crds())
            for member in rig.members.values():
                demo.register_member(hub, member)
            port = free_port()
            os.environ["FLOTILLA_METRICS_PORT"] = str(port)
            operator = demo.start_operator(hub, Path(tmp) / "operator.log")
            for name in rig.members:
                kube.wait_for(partial(demo.member_ready, hub, name), timeout=120, what=f"member {name} Ready")
            kube.ensure_namespace(api, NS)
            for member in rig.members.values():
                kube.ensure_namespace(member.api_client(), NS)
            kube.apply(api, policy())
            seen: dict[str, float] = {}
            watchers = [
                threading.Thread(target=watch_arrivals, args=(m, seen, stop), daemon=True)
                for m in rig.members.values()
            ]
            for w in watchers:
                w.start()
            time.sleep(1)
            rss_before = rss_kib(operator.pid)
            cpu_before = cpu_seconds(operator.pid)
            writes_before = scrape(port).get("flotilla_hub_writes_total", 0.0)
            applied: dict[str, float] = {}
            lock = threading.Lock()

            def apply_one(i: int) -> None:
                obj = deployment(i)
                kube.apply(api, obj)
                with lock:
                    applied[obj["metadata"]["name"]] = time.monotonic()

            start = time.monotonic()
            with ThreadPoolExecutor(max_workers=16) as pool:
                list(pool.map(apply_one, range(n)))
            apply_seconds = time.monotonic() - start
            deadline = time.monotonic() + args.timeout
            while len([k for k in applied if k in seen]) < n and time.monotonic() < deadline:
                time.sleep(0.2)
            total_seconds = time.monotonic() - start
            cpu_arrived = cpu_seconds(operator.pid) - cpu_before
            wait_settled(port)
            cpu_settled = cpu_seconds(operator.pid) - cpu_before
            writes = scrape(port).get("flotilla_hub_writes_total", 0.0) - writes_before
            idle_from = cpu_seconds(operator.pid)
            time.sleep(10)
            idle_cpu = (cpu_seconds(operator.pid) - idle_from) / 10
            latencies = sorted(seen[k] - applied[k] for k in applied if k in seen)
            rss_after, hwm = rss_kib(operator.pid)
            missing = n - len(latencies)
            q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else latencies * 99
            result = {
                "workloads": n,
                "arrived": len(latencies),
                "missing": missing,
                "apply_all_seconds": round(apply_seconds, 2),
                "all_arrived_seconds": round(total_seconds, 2),
                "p50_seconds": round(q[49], 3),
                "p90_seconds": round(q[89], 3),
                "p99_seconds": round(q[98], 3),
                "max_seconds": round(latencies[-1], 3) if latencies else None,
                "operator_rss_mib_before": round(rss_before[0] / 1024, 1),
                "operator_rss_mib_after": round(rss_after / 1024, 1),
                "operator_peak_rss_mib": round(hwm / 1024, 1),
                "operator_cpu_seconds_until_arrived": round(cpu_arrived, 2),
                "operator_cpu_ms_per_workload": round(cpu_settled / n * 1000, 1),
                "hub_writes_per_workload": round(writes / n, 2),
                "idle_cpu_percent": round(idle_cpu * 100, 2),
            }
            print(f"hub apply -> object on member, {n} Deployments applied at once (16 client threads)")
            print(
                f"  arrived {len(latencies)}/{n}; all applied in {apply_seconds:.2f}s,"
                f" all arrived in {total_seconds:.2f}s"
            )
            print(
                f"  latency p50 {result['p50_seconds']}s  p90 {result['p90_seconds']}s  "
                f"p99 {result['p99_seconds']}s  max {result['max_seconds']}s   (target p50 < 1 s, p99 < 2 s)"
            )
            rss = f"{result['operator_rss_mib_before']} -> {result['operator_rss_mib_after']} MiB"
            print(f"  operator RSS {rss}, peak {result['operator_peak_rss_mib']} MiB")
            print(
                f"  operator CPU {result['operator_cpu_ms_per_workload']} ms per workload (until settled),"
                f" {result['hub_writes_per_workload']} hub writes per workload;"
                f" idle with {n} bindings: {result['idle_cpu_percent']} % of one core"
            )
            print("  hub writes by controller:", json.dumps(writes_by_controller(port)))
            if args.restart:
                result.update(restart(rig, hub, operator, port, Path(tmp), n))
                operator = result.pop("operator")
            print(json.dumps(result))
            return 0 if missing == 0 else 1
        finally:
            stop.set()
            try:
                if operator is not None:
                    operator.terminate()
                    try:
                        operator.wait(10)
                    except subprocess.TimeoutExpired:
                        operator.kill()
                        operator.wait()
            finally:
                if args.log:
                    args.log.write_bytes(
                        b"".join(f.read_bytes() for f in sorted(Path(tmp).glob("operator*.log")))
                    )
                rig.down()


def restart(
    rig: Rig, hub: ClusterHandle, operator: subprocess.Popen[bytes], port: int, tmp: Path, n: int
) -> dict[str, Any]:
    """Stop the operator, start a new one, and check that it changes nothing."""
    before = copies(rig)
    operator.send_signal(signal.SIGTERM)
    operator.wait(30)
    started = time.monotonic()
    operator = demo.start_operator(hub, tmp / "operator-2.log")
    settled = wait_settled(port, timeout=600)
    after = copies(rig)
    bindings = kube.list_objects(hub.api_client(), GROUP_VERSION, "ResourceBinding", NS)
    decided = {
        (c["name"], b["spec"]["resource"]["name"]) for b in bindings for c in b["spec"].get("clusters") or ()
    }
    recreated = sum(1 for k, uid in before.items() if k in after and after[k] != uid)
    lost = len(decided - set(after))
    duplicated = len(set(after) - decided)
    seconds = time.monotonic() - started
    print(
        f"  restart with {len(bindings)} bindings: {recreated} copies recreated, {lost} lost,"
        f" {duplicated} duplicated; steady state after {seconds:.1f}s (queues idle from {settled:.1f}s)"
    )
    return {
        "operator": operator,
        "restart_bindings": len(bindings),
        "restart_recreated": recreated,
        "restart_lost": lost,
        "restart_duplicated": duplicated,
        "restart_steady_seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
