"""``flotilla`` / ``kubectl flotilla``: the command line.

``flotilla dev up|down|status`` runs the local rig (a hub plus GPU member clusters as plain
processes on 127.0.0.1); ``flotilla demo`` is the embedded default: rig, CRDs, operator and
examples in one command.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flotilla.rig.cluster import ClusterHandle

DEFAULT_WORKDIR = Path(os.environ.get("FLOTILLA_RIG_DIR", ".rig"))


def default_fleet_path() -> Path:
    return Path(str(resources.files("flotilla.rig") / "fleets" / "default.yaml"))


def _cmd_dev_up(args: argparse.Namespace) -> int:
    from flotilla.rig.fleet import FleetError, load_fleet
    from flotilla.rig.runner import Rig, RigError, load_handles

    if load_handles(args.workdir):
        print(
            f"a rig is already running under {args.workdir}; run 'flotilla dev down' first", file=sys.stderr
        )
        return 1
    try:
        fleet = load_fleet(Path(args.fleet))
        rig = Rig(fleet=fleet, workdir=args.workdir.resolve()).up(timeout=args.timeout)
    except (FleetError, RigError) as exc:
        print(f"flotilla: {exc}", file=sys.stderr)
        return 1
    _print_status(rig.clusters)
    return 0


def _cmd_dev_down(args: argparse.Namespace) -> int:
    from flotilla.rig.runner import down_from_state

    n = down_from_state(args.workdir.resolve())
    print(f"stopped {n} processes" if n else f"no rig running under {args.workdir}")
    return 0


def _print_status(handles: Sequence[ClusterHandle]) -> None:
    print(f"{'CLUSTER':<10} {'ROLE':<7} {'READY':<6} {'SERVER':<26} KUBECONFIG")
    for h in handles:
        print(f"{h.name:<10} {h.role:<7} {h.ready()!s:<6} {h.server:<26} {h.kubeconfig}")


def _cmd_dev_status(args: argparse.Namespace) -> int:
    from flotilla.rig.runner import load_handles

    handles = load_handles(args.workdir.resolve())
    if not handles:
        print(f"no rig running under {args.workdir}")
        return 1
    if args.output == "json":
        print(json.dumps([h.to_json() for h in handles], indent=2))
    else:
        _print_status(handles)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default: rig, Flotilla CRDs, members registered, operator, examples applied."""
    from flotilla.rig.fleet import FleetError, load_fleet
    from flotilla.rig.runner import Rig, RigError, down_from_state, load_handles

    workdir = args.workdir.resolve()
    handles = load_handles(workdir)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[demo {time.monotonic() - t0:5.1f}s] {msg}", flush=True)

    if not handles:
        try:
            rig = Rig(fleet=load_fleet(Path(args.fleet)), workdir=workdir).up()
        except (FleetError, RigError) as exc:
            print(f"flotilla: {exc}", file=sys.stderr)
            return 1
        handles = rig.clusters
    _print_status(handles)
    try:
        return _run_demo(args, workdir, handles, say)
    except BaseException:
        down_from_state(workdir)
        raise


def _run_demo(
    args: argparse.Namespace, workdir: Path, handles: Sequence[ClusterHandle], say: Callable[[str], None]
) -> int:
    from flotilla import kube
    from flotilla.rig import demo
    from flotilla.rig.runner import down_from_state, record_process

    hub = next(h for h in handles if h.role == "hub")
    say("installing the flotilla.dev CRDs on the hub")
    kube.install_crds(hub.api_client(), demo.flotilla_crds())
    for member in (h for h in handles if h.role == "member"):
        demo.register_member(hub, member)
    say(f"registered members {', '.join(h.name for h in handles if h.role == 'member')}")
    log = workdir / "operator.log"
    operator = demo.start_operator(hub, log)
    record_process(workdir, "hub", "flotilla-operator", operator.pid, sys.executable)
    say(f"operator started (pid {operator.pid}, log {log})")
    for member in (h for h in handles if h.role == "member"):
        name = member.name
        kube.wait_for(partial(demo.member_ready, hub, name), timeout=120, what=f"member {name} to be Ready")
    say("all members Ready; applying examples/")
    applied = demo.apply_examples(hub, say)
    workloads = [d for d in applied if not d["apiVersion"].startswith("flotilla.dev/") and d.get("spec")]
    say("waiting for placement decisions")
    rows = demo.placement_report(hub, expected=len(workloads))
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'WORKLOAD':<{width}}  {'CLUSTERS':<12}  DECISION")
    for workload, where, detail in rows:
        print(f"{workload:<{width}}  {where:<12}  {detail}")
    print(f"\nhub kubeconfig: {hub.kubeconfig}  (try: kubectl get memberclusters,frb -A)")
    if args.detach:
        print(f"left running; stop everything with: flotilla dev down --workdir {args.workdir}")
        return 0
    print("press Ctrl-C to stop the operator and the clusters", flush=True)
    # A SIGTERM (e.g. from a CI timeout) stops everything as Ctrl-C does, leaving no processes.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while operator.poll() is None:
            time.sleep(1)
        print(f"operator exited with code {operator.returncode}; see {log}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        down_from_state(workdir)
    return 0


def _hub(args: argparse.Namespace) -> Any:
    """An ApiClient for the hub: --kubeconfig, then KUBECONFIG, then the running rig's hub."""
    from flotilla.rig.cluster import ClusterHandle
    from flotilla.rig.runner import load_handles

    path = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not path:
        hubs = [h for h in load_handles(DEFAULT_WORKDIR.resolve()) if h.role == "hub"]
        if not hubs:
            raise SystemExit("flotilla: no hub: pass --kubeconfig, set KUBECONFIG or start 'flotilla dev up'")
        path = str(hubs[0].kubeconfig)
    return ClusterHandle(name="hub", role="hub", server="", kubeconfig=Path(path)).api_client()


def _emit(rows: list[dict[str, Any]], columns: list[tuple[str, str]], output: str) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2))
        return
    if output == "yaml":
        import yaml

        print(yaml.safe_dump(rows, sort_keys=False), end="")
        return
    widths = [max([len(title)] + [len(str(r.get(key, ""))) for r in rows]) for title, key in columns]
    print("  ".join(title.ljust(w) for (title, _), w in zip(columns, widths, strict=True)).rstrip())
    for r in rows:
        print(
            "  ".join(
                str(r.get(key, "")).ljust(w) for (_, key), w in zip(columns, widths, strict=True)
            ).rstrip()
        )


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    from flotilla.api.conditions import find_condition

    return find_condition((obj.get("status") or {}).get("conditions"), type_) or {}


def _cmd_get_clusters(args: argparse.Namespace) -> int:
    from flotilla import kube
    from flotilla.api import GROUP_VERSION

    rows = []
    for mc in kube.list_objects(_hub(args), GROUP_VERSION, "MemberCluster"):
        st = mc.get("status") or {}
        summary = st.get("resourceSummary") or {}
        models = summary.get("gpuModels") or []
        ready = _condition(mc, "Ready")
        rows.append(
            {
                "name": mc["metadata"]["name"],
                "ready": ready.get("status", "Unknown"),
                "reason": ready.get("reason", ""),
                "gpusFree": sum(m.get("free", 0) for m in models),
                "gpusTotal": sum(m.get("total", 0) for m in models),
                "gpuModels": ",".join(f"{m['model']}x{m.get('total', 0)}" for m in models),
                "nodes": (st.get("nodeSummary") or {}).get("totalNum", 0),
                "version": st.get("kubernetesVersion", ""),
            }
        )
    columns = [("NAME", "name"), ("READY", "ready"), ("GPUS FREE", "gpusFree"), ("GPUS TOTAL", "gpusTotal")]
    columns += [("GPU MODELS", "gpuModels"), ("NODES", "nodes")]
    if args.output == "wide":
        columns += [("REASON", "reason"), ("VERSION", "version")]
    _emit(rows, columns, args.output)
    return 0


def _binding_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from flotilla import kube
    from flotilla.api import GROUP_VERSION

    namespace = None if args.all_namespaces else args.namespace
    rows = []
    for rb in kube.list_objects(_hub(args), GROUP_VERSION, "ResourceBinding", namespace):
        r = rb["spec"]["resource"]
        scheduled = _condition(rb, "Scheduled")
        rows.append(
            {
                "namespace": rb["metadata"]["namespace"],
                "workload": f"{r['kind']}/{r['name']}",
                "binding": rb["metadata"]["name"],
                "clusters": (rb.get("status") or {}).get("clustersSummary") or "-",
                "scheduled": scheduled.get("status", "Unknown"),
                "applied": _condition(rb, "FullyApplied").get("status", "-"),
                "message": scheduled.get("message", ""),
                "_body": rb,
            }
        )
    return rows


def _cmd_get_workloads(args: argparse.Namespace) -> int:
    rows = _binding_rows(args)
    if args.status:
        rows = [r for r in rows if r["scheduled"] == {"scheduled": "True", "pending": "False"}[args.status]]
    if args.cluster:
        rows = [r for r in rows if args.cluster in r["clusters"].replace(":", ",").split(",")]
    columns = [("NAMESPACE", "namespace"), ("WORKLOAD", "workload"), ("CLUSTERS", "clusters")]
    columns += [("SCHEDULED", "scheduled"), ("APPLIED", "applied")]
    if args.output == "wide":
        columns.append(("MESSAGE", "message"))
    _emit([{k: v for k, v in r.items() if k != "_body"} for r in rows], columns, args.output)
    return 0


def _cmd_describe_workload(args: argparse.Namespace) -> int:
    """Why a workload is where it is: the decision line, then per cluster the filter or scores."""
    wanted = args.workload.lower()
    rows = [r for r in _binding_rows(args) if wanted in (r["workload"].lower(), r["binding"].lower())]
    if not rows:
        print(f"no workload {args.workload!r} in namespace {args.namespace!r} (try -A)", file=sys.stderr)
        return 1
    for r in rows:
        rb = r["_body"]
        explanation = (rb.get("status") or {}).get("explanation") or {}
        if args.output in ("json", "yaml"):
            _emit(
                [{"workload": r["workload"], "binding": r["binding"], "explanation": explanation}],
                [],
                args.output,
            )
            continue
        print(f"Workload:   {r['namespace']}/{r['workload']}   (binding {r['binding']})")
        print(f"Clusters:   {r['clusters']}   Scheduled={r['scheduled']} FullyApplied={r['applied']}")
        print(f"Decision:   {r['message']}")
        print(f"Mode:       {explanation.get('mode', '-')}")
        print("Per cluster:")
        for c in explanation.get("clusters") or []:
            if not c.get("feasible"):
                f = c.get("filter") or {}
                nodes = ", ".join(f"{v} {k}" for k, v in (c.get("nodes") or {}).items())
                detail = f"rejected by {f.get('plugin')}: {'; '.join(f.get('reasons') or [])}"
                print(f"  {c['cluster']:<12} {detail}" + (f" (nodes: {nodes})" if nodes else ""))
            else:
                scores = ", ".join(f"{p}={v['weighted']}" for p, v in (c.get("scores") or {}).items())
                chosen = f"selected, {c.get('replicas', 0)} replicas" if c.get("selected") else "feasible"
                print(f"  {c['cluster']:<12} {chosen}; total {c.get('total', '-')} ({scores})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flotilla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the local multi-cluster rig")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    for name, fn, help_ in (
        ("up", _cmd_dev_up, "start a hub and member clusters"),
        ("down", _cmd_dev_down, "stop every process the rig started"),
        ("status", _cmd_dev_status, "show the running clusters"),
    ):
        p = dev_sub.add_parser(name, help=help_)
        p.add_argument(
            "--workdir",
            type=Path,
            default=DEFAULT_WORKDIR,
            help="where state, logs and kubeconfigs live (default: .rig)",
        )
        p.set_defaults(func=fn)
        if name == "up":
            p.add_argument("--fleet", default=str(default_fleet_path()), help="fleet description YAML")
            p.add_argument("--timeout", type=float, default=240.0, help="seconds to wait per component")
        if name == "status":
            p.add_argument("-o", "--output", choices=["table", "json"], default="table")

    def hub_options(p: argparse.ArgumentParser, namespaced: bool = True) -> None:
        p.add_argument("--kubeconfig", help="hub kubeconfig (default: KUBECONFIG, then the local rig's hub)")
        p.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"], default="table")
        if namespaced:
            p.add_argument("-n", "--namespace", default="default")
            p.add_argument("-A", "--all-namespaces", action="store_true")

    get = sub.add_parser("get", help="list clusters or workloads on the hub")
    get_sub = get.add_subparsers(dest="what", required=True)
    clusters = get_sub.add_parser(
        "clusters", aliases=["cluster", "mc"], help="member clusters with GPU inventory"
    )
    hub_options(clusters, namespaced=False)
    clusters.set_defaults(func=_cmd_get_clusters)
    workloads = get_sub.add_parser("workloads", aliases=["workload", "wl"], help="placed workloads")
    hub_options(workloads)
    workloads.add_argument("--status", choices=["scheduled", "pending"])
    workloads.add_argument("--cluster", help="only workloads placed on this cluster")
    workloads.set_defaults(func=_cmd_get_workloads)
    describe = sub.add_parser("describe", help="explain a workload's placement, per cluster and plugin")
    describe_sub = describe.add_subparsers(dest="what", required=True)
    workload = describe_sub.add_parser("workload", aliases=["wl"], help="KIND/NAME or binding name")
    workload.add_argument("workload")
    hub_options(workload)
    workload.set_defaults(func=_cmd_describe_workload)
    version = sub.add_parser("version", help="print the Flotilla version")
    version.set_defaults(func=lambda _a: print(f"flotilla {__import__('flotilla').__version__}") or 0)

    demo = sub.add_parser("demo", help="the embedded default: local hub + GPU members, Flotilla, examples")
    demo.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    demo.add_argument("--fleet", default=str(default_fleet_path()), help="fleet description YAML")
    demo.add_argument("--detach", action="store_true", help="leave everything running and return")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.monotonic()
    rc: int = args.func(args)
    if os.environ.get("FLOTILLA_TIMING"):
        print(f"({time.monotonic() - t0:.1f}s)", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
