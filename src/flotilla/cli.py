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
from collections.abc import Sequence
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
    """The embedded default: start the rig (or reuse a running one) and keep it up until Ctrl-C."""
    from flotilla.rig.fleet import FleetError, load_fleet
    from flotilla.rig.runner import Rig, RigError, down_from_state, load_handles

    workdir = args.workdir.resolve()
    handles = load_handles(workdir)
    if not handles:
        try:
            rig = Rig(fleet=load_fleet(Path(args.fleet)), workdir=workdir).up()
        except (FleetError, RigError) as exc:
            print(f"flotilla: {exc}", file=sys.stderr)
            return 1
        handles = rig.clusters
    _print_status(handles)
    if args.detach:
        print(f"rig left running; stop it with: flotilla dev down --workdir {args.workdir}")
        return 0
    print("fleet running; press Ctrl-C to stop it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        down_from_state(workdir)
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
