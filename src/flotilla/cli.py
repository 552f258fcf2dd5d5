"""``flotilla`` / ``kubectl flotilla``: the command line.

``flotilla dev up|down|status`` runs the local rig (a hub plus GPU member clusters as plain
processes on 127.0.0.1); ``flotilla demo`` is the embedded default: rig, CRDs, operator and
examples in one command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

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
        kube.wait_for(partial(_member_ready, hub, name), timeout=120, what=f"member {name} to be Ready")
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
    try:
        while operator.poll() is None:
            time.sleep(1)
        print(f"operator exited with code {operator.returncode}; see {log}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        down_from_state(workdir)
    return 0


def _member_ready(hub: ClusterHandle, name: str) -> bool:
    from flotilla import kube
    from flotilla.rig.demo import GROUP_VERSION

    mc = kube.get(hub.api_client(), GROUP_VERSION, "MemberCluster", name) or {}
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (mc.get("status") or {}).get("conditions") or []
    )


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
