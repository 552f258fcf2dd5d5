"""``flotilla`` / ``kubectl flotilla``: the command line.

``flotilla dev up|down|status`` runs the local rig (a hub plus GPU member clusters as plain
processes on 127.0.0.1); ``flotilla demo`` is the embedded default: rig, CRDs, operator and
examples in one command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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

    workdir = args.workdir.resolve()
    peer = down_from_state(workdir / "peer")  # the Karmada peer (flotilla.rig.peer), if one runs
    n = down_from_state(workdir)
    if peer:
        print(f"stopped {peer} Karmada peer processes")
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


EXIT_OK = 0
EXIT_ERROR = 1
"""A failure of the command: an object that does not exist, a kubeconfig that cannot be used,
an API error other than those below, a timeout."""
EXIT_USAGE = 2
"""Wrong arguments (argparse's own code)."""
EXIT_UNREACHABLE = 3
"""An API server (the hub; the member for join/unjoin) cannot be reached: connection, TLS."""
EXIT_FORBIDDEN = 4
"""The API server refused the credentials (401) or the request (403)."""
EXIT_NO_CRDS = 5
"""The hub does not serve the flotilla.dev kinds: the CRDs are not installed."""


class CliError(Exception):
    """A failure reported as one ``flotilla: error: ...`` line, without a traceback, exiting with
    ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def hub_kubeconfig(
    flag: str | None,
    environ: Mapping[str, str],
    rig_hub: Callable[[], Path | None],
    default: Path,
) -> str:
    """The kubeconfig that reaches the hub, as kubectl picks it, with the local rig before the default.

    ``--kubeconfig``, then ``KUBECONFIG`` (a path list, merged as kubectl merges it), then the hub of
    a rig running under ``FLOTILLA_RIG_DIR`` (default ``.rig``), then ``default``
    (``~/.kube/config``). Raises :class:`CliError` when the chosen file does not exist.
    """
    if flag:
        if not Path(flag).expanduser().is_file():
            raise CliError(f"--kubeconfig {flag}: no such file")
        return flag
    env = environ.get("KUBECONFIG", "")
    if env:
        if not any(Path(p).expanduser().is_file() for p in env.split(os.pathsep) if p):
            raise CliError(f"KUBECONFIG={env}: no such file")
        return env
    hub = rig_hub()
    if hub is not None:
        if not hub.is_file():
            raise CliError(f"the local rig's hub kubeconfig {hub} is gone; run 'flotilla dev down'")
        return str(hub)
    if default.is_file():
        return str(default)
    raise CliError(
        f"no hub kubeconfig: pass --kubeconfig, set KUBECONFIG, start 'flotilla dev up' or create {default}"
    )


def _rig_hub() -> Path | None:
    from flotilla.rig.runner import load_handles

    try:
        handles = load_handles(DEFAULT_WORKDIR.resolve())
    except (OSError, ValueError, KeyError, TypeError):  # no rig, or a state file from another version
        return None
    return next((h.kubeconfig for h in handles if h.role == "hub"), None)


def _load_kubeconfig(path: str, context: str | None, what: str) -> tuple[Any, str | None]:
    """A ``kubernetes.client.Configuration`` for ``context`` (default: current-context) of the
    kubeconfig ``path`` (a path list is merged as kubectl does), and the context's namespace."""
    from kubernetes import client, config

    cfg = client.Configuration()
    try:
        config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except Exception as exc:  # ConfigException, YAML errors, unreadable certificate data, ...
        where = f"{what} {path}" + (f" (context {context!r})" if context else "")
        raise CliError(f"cannot use {where}: {_one_line(str(exc))}") from None
    chosen = next((c for c in contexts or () if c.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return cfg, str(namespace) if namespace else None


def _hub_path(args: argparse.Namespace) -> str:
    return hub_kubeconfig(args.kubeconfig, os.environ, _rig_hub, Path("~/.kube/config").expanduser())


def _hub(args: argparse.Namespace) -> Any:
    """An ApiClient for the hub (see :func:`hub_kubeconfig`), in ``--context`` if given.

    Sets ``args.namespace`` (when the command has ``-n`` and it was not given) to the context's
    namespace, else ``default``, as kubectl does."""
    from kubernetes import client

    cfg, namespace = _load_kubeconfig(_hub_path(args), args.context, "kubeconfig")
    if getattr(args, "namespace", "") is None:
        args.namespace = namespace or "default"
    return client.ApiClient(cfg)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _not_served(exc: BaseException) -> bool:
    """A :func:`flotilla.kube.resolve` miss (the kind is not served), not a KeyError/IndexError."""
    return isinstance(exc, LookupError) and not isinstance(exc, KeyError | IndexError)


def error_line(exc: BaseException, target: str = "the hub") -> str | None:
    """The one-line message for an error a command talking to ``target`` can meet, or None (a
    bug: keep the traceback)."""
    import urllib3
    from kubernetes.client import ApiException

    from flotilla import API_GROUP

    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, ApiException):
        if not exc.status:  # raised inside the client (e.g. a TLS failure), no HTTP answer
            return _one_line(f"cannot talk to {target}: {exc.reason or exc}")
        message = ""
        try:
            body = json.loads(exc.body or "")
            message = str(body.get("message") or "") if isinstance(body, dict) else ""
        except (TypeError, ValueError):
            message = ""
        head = f"{target} answered HTTP {exc.status} {exc.reason or ''}".rstrip()
        if exc.status == 401:
            head += " (the kubeconfig's credentials were rejected)"
        return _one_line(f"{head}: {message}" if message else head)
    if isinstance(exc, urllib3.exceptions.MaxRetryError):
        # Drop the "HTTPSConnection(host='...', port=...): " prefixes: the address follows anyway.
        reason = re.sub(r"^(?:\w+\(host=[^)]*\): )+", "", str(exc.reason or exc))
        pool = exc.pool
        url = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else ""
        where = f" at {url}" if url and url not in target else ""
        return _one_line(f"cannot reach {target}{where}: {reason}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return _one_line(f"cannot talk to {target}: {exc}")
    if _not_served(exc):
        # flotilla.kube.resolve: the kind is not served (for flotilla.dev: CRDs not installed).
        if API_GROUP in str(exc):
            return _one_line(f"{exc} (are the Flotilla CRDs installed on {target}?)")
        return _one_line(f"{exc} ({target})")
    return None


def exit_code(exc: BaseException) -> int:
    """The exit code for an error :func:`error_line` describes (see ``EXIT_*``)."""
    import urllib3
    from kubernetes.client import ApiException

    from flotilla import API_GROUP

    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ApiException):
        if not exc.status:
            return EXIT_UNREACHABLE
        return EXIT_FORBIDDEN if exc.status in (401, 403) else EXIT_ERROR
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return EXIT_UNREACHABLE
    if _not_served(exc) and API_GROUP in str(exc):
        return EXIT_NO_CRDS
    return EXIT_ERROR


T = TypeVar("T")


def on_cluster(target: str, step: Callable[[], T]) -> T:
    """Run ``step``; an error :func:`error_line` knows becomes a :class:`CliError` naming
    ``target`` (e.g. ``member cluster https://...``) with its exit code."""
    try:
        return step()
    except CliError:
        raise
    except Exception as exc:
        line = error_line(exc, target)
        if line is None:
            raise
        raise CliError(line, exit_code(exc)) from None


def format_rows(rows: list[dict[str, Any]], columns: list[tuple[str, str]], output: str) -> str:
    """Rows as ``json``, ``yaml`` (every row field) or a table of ``columns`` (``(title, key)``)."""
    if output == "json":
        return json.dumps(rows, indent=2) + "\n"
    if output == "yaml":
        from flotilla import yamlout

        return yamlout.dump(rows)
    widths = [max([len(title)] + [len(str(r.get(key, ""))) for r in rows]) for title, key in columns]
    lines = ["  ".join(title.ljust(w) for (title, _), w in zip(columns, widths, strict=True)).rstrip()]
    for r in rows:
        cells = (str(r.get(key, "")).ljust(w) for (_, key), w in zip(columns, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _emit(rows: list[dict[str, Any]], columns: list[tuple[str, str]], output: str) -> None:
    print(format_rows(rows, columns, output), end="")


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    from flotilla.api.conditions import find_condition

    return find_condition((obj.get("status") or {}).get("conditions"), type_) or {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def cluster_row(mc: Mapping[str, Any]) -> dict[str, Any]:
    """What ``get clusters`` reports for one MemberCluster (the ``-o json``/``-o yaml`` shape).

    * ``status``: ``Ready``; ``NotReady (<reason>)`` / ``Unknown (<reason>)`` from the Ready
      condition; ``Ready (Cordoned)`` for a member cordoned with ``kubectl flotilla cordon`` (the
      ``cluster.flotilla.dev/unschedulable`` taint) or whose every node is cordoned; or, for a
      Ready member without a schedulable node, ``Ready (NodesNotReady)`` or
      ``Ready (NoSchedulableNodes)``.
    * ``stale``: true unless the Ready condition is True. The operator keeps the last inventory it
      saw when it loses a member, so the figures are then the last known ones, not live data.
    * ``gpusFree``/``gpusTotal``/``nodes``: None when the member has never reported them.
      GPU figures cover schedulable nodes only (Ready and not cordoned).
    * ``cordonedNodes``: ``nodeSummary.cordonedNum``; when an older operator does not report it,
      inferred only in the all-cordoned case, else None.
    * ``cordoned``: the member is cordoned, or every node is; ``taints``: ``spec.taints`` as
      ``key[=value]:effect`` strings (with the operator's automatic ``cluster.flotilla.dev/``
      taints of a NotReady member).
    """
    from flotilla.api.cluster import READY
    from flotilla.api.taints import is_cordoned, taint_string

    st = mc.get("status") or {}
    summary = st.get("resourceSummary")
    node_summary = st.get("nodeSummary") or {}
    ready = _condition(mc, READY)
    ready_status = str(ready.get("status") or "Unknown")
    reason = str(ready.get("reason") or "")
    models = (summary or {}).get("gpuModels") or []
    nodes, ready_nodes = _int(node_summary.get("totalNum")), _int(node_summary.get("readyNum"))
    cordoned_nodes = _int(node_summary.get("cordonedNum"))
    # resourceSummary counts schedulable nodes only: nodes but no allocatable means none is.
    none_schedulable = bool(nodes) and summary is not None and not summary.get("allocatable")
    if cordoned_nodes is None and none_schedulable and ready_nodes == nodes:
        cordoned_nodes = nodes  # every node Ready, none schedulable: every node is cordoned
    taints = list((mc.get("spec") or {}).get("taints") or [])
    all_nodes_cordoned = bool(nodes) and cordoned_nodes is not None and cordoned_nodes >= (nodes or 0)
    cordoned = is_cordoned(taints) or all_nodes_cordoned
    if ready_status == "True":
        if cordoned:
            status = "Ready (Cordoned)"
        elif none_schedulable and ready_nodes == 0:
            status = "Ready (NodesNotReady)"
        elif none_schedulable:
            status = "Ready (NoSchedulableNodes)"
        else:
            status = "Ready"
    else:
        status = ("NotReady" if ready_status == "False" else "Unknown") + (f" ({reason})" if reason else "")
    return {
        "name": (mc.get("metadata") or {}).get("name", ""),
        "status": status,
        "ready": ready_status,
        "reason": reason,
        "message": str(ready.get("message") or ""),
        "stale": ready_status != "True",
        "cordoned": cordoned,
        "gpusFree": sum(int(m.get("free", 0)) for m in models) if summary is not None else None,
        "gpusTotal": sum(int(m.get("total", 0)) for m in models) if summary is not None else None,
        "gpuModels": ",".join(f"{m['model']}x{m.get('total', 0)}" for m in models),
        "nodes": nodes,
        "readyNodes": ready_nodes,
        "cordonedNodes": cordoned_nodes,
        "taints": [taint_string(t) for t in taints],
        "version": st.get("kubernetesVersion", ""),
    }


CLUSTER_COLUMNS = [
    ("NAME", "name"),
    ("STATUS", "status"),
    ("GPUS FREE", "gpusFree"),
    ("GPUS TOTAL", "gpusTotal"),
    ("GPU MODELS", "gpuModels"),
    ("NODES", "nodes"),
]
CLUSTER_WIDE_COLUMNS = [("VERSION", "version"), ("TAINTS", "taints"), ("MESSAGE", "message")]


def _figure(value: int | None, note: str = "") -> str:
    if value is None:
        return "-"
    return f"{value} ({note})" if note else str(value)


def cluster_cells(row: Mapping[str, Any]) -> dict[str, Any]:
    """A :func:`cluster_row` as table cells: the figures of a member that is not Ready say
    ``(stale)``, the GPU figures of a member whose nodes are all cordoned say ``(cordoned)``."""
    stale = "stale" if row["stale"] else ""
    gpu_note = stale or ("cordoned" if row["cordoned"] else "")
    nodes = _figure(row["nodes"], stale)
    if not stale and row["cordonedNodes"]:
        nodes += f" ({row['cordonedNodes']} cordoned)"
    return {
        **row,
        "gpusFree": _figure(row["gpusFree"], gpu_note),
        "gpusTotal": _figure(row["gpusTotal"], gpu_note),
        "gpuModels": row["gpuModels"] or "-",
        "nodes": nodes,
        "version": row["version"] or "-",
        "taints": ",".join(row["taints"]) or "-",
        "message": " ".join(str(row["message"]).split()),
    }


def render_clusters(members: Iterable[Mapping[str, Any]], output: str) -> str:
    """``get clusters`` output for MemberCluster objects: a table (``table``/``wide``), json or yaml."""
    rows = [cluster_row(mc) for mc in members]
    if output in ("json", "yaml"):
        return format_rows(rows, [], output)
    columns = CLUSTER_COLUMNS + (CLUSTER_WIDE_COLUMNS if output == "wide" else [])
    return format_rows([cluster_cells(r) for r in rows], columns, output)


def _cmd_get_clusters(args: argparse.Namespace) -> int:
    from flotilla import kube
    from flotilla.api import GROUP_VERSION

    print(render_clusters(kube.list_objects(_hub(args), GROUP_VERSION, "MemberCluster"), args.output), end="")
    return 0


def set_cordon(api: Any, name: str, cordoned: bool, now: datetime | None = None) -> bool:
    """Cordon (``cluster.flotilla.dev/unschedulable:NoSchedule``) or uncordon a MemberCluster.

    Returns whether anything changed. The taint list is written with a merge patch that carries
    the resourceVersion it was computed from (a conflict re-reads and retries), so other taints -
    the user's, the operator's automatic ones - are never lost. Raises :class:`CliError` when the
    MemberCluster does not exist.
    """
    from kubernetes.client import ApiException

    from flotilla import kube
    from flotilla.api import GROUP_VERSION
    from flotilla.api.taints import cordon, same_taints, uncordon

    for _ in range(10):
        mc = kube.get(api, GROUP_VERSION, "MemberCluster", name)
        if mc is None:
            raise CliError(f"membercluster {name!r} not found")
        current = (mc.get("spec") or {}).get("taints") or []
        wanted = cordon(current, now or datetime.now(UTC)) if cordoned else uncordon(current)
        if same_taints(current, wanted):
            return False
        body = {
            "metadata": {"resourceVersion": mc["metadata"]["resourceVersion"]},
            "spec": {"taints": wanted},
        }
        try:
            kube.patch(api, mc, body)
        except ApiException as exc:
            if exc.status == 409:
                continue  # changed meanwhile (e.g. the operator tainted it): read again
            raise
        return True
    raise CliError(f"membercluster {name!r} kept changing; try again")


def _cmd_cordon(args: argparse.Namespace) -> int:
    cordoned = args.command == "cordon"
    changed = set_cordon(_hub(args), args.cluster, cordoned)
    verb = "cordoned" if cordoned else "uncordoned"
    print(f"membercluster/{args.cluster} {verb if changed else 'already ' + verb}")
    return 0


def _binding_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from flotilla import kube
    from flotilla.api import GROUP_VERSION

    api = _hub(args)  # first: it sets the default namespace from the kubeconfig context
    namespace = None if args.all_namespaces else args.namespace
    rows = []
    for rb in kube.list_objects(api, GROUP_VERSION, "ResourceBinding", namespace):
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


def cluster_lines(explanation: Mapping[str, Any]) -> list[str]:
    from flotilla.explain import cluster_lines as lines

    return lines(explanation)


def profile_lines(explanation: Mapping[str, Any]) -> list[str]:
    from flotilla.explain import profile_lines as lines

    return lines(explanation)


def _cmd_describe_workload(args: argparse.Namespace) -> int:
    """Why a workload is where it is: the decision line, then per cluster the filter or scores."""
    rows = _workload_rows(args)
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
        for line in cluster_lines(explanation):
            print(line)
        learned = profile_lines(explanation)
        if learned:
            print("Profile:")
            for line in learned:
                print(line)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    """What-if for workloads not applied yet: per cluster, filter results and scores (flotilla.explain)."""
    import yaml

    from flotilla import explain as what_if
    from flotilla import kube
    from flotilla.api import GROUP_VERSION

    api = _hub(args)  # first: it sets the default namespace from the kubeconfig context
    try:
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"-f {args.filename}: {_one_line(str(exc))}") from None
    policies = []
    for kind in ("PropagationPolicy", "ClusterPropagationPolicy"):
        policies += [{**p, "kind": kind} for p in kube.list_objects(api, GROUP_VERSION, kind)]
    groups = {
        (g["metadata"]["namespace"], g["metadata"]["name"]): g
        for g in kube.list_objects(api, GROUP_VERSION, "PodGroup")
    }
    members = what_if.live_members(api)
    try:
        results = what_if.explain(
            docs, what_if.snapshot_of(members), policies, namespace=args.namespace, pod_groups=groups
        )
    except ValueError as exc:
        raise CliError(f"-f {args.filename}: {exc}") from None
    if args.output in ("json", "yaml"):
        rows = [
            {"workload": r.workload, "policy": r.policy, "schedulable": r.ok, "decision": r.message}
            | ({"explanation": r.explanation} if r.explanation else {})
            for r in results
        ]
        _emit(rows, [], args.output)
    else:
        print(what_if.render(results, members))
    return 0


def _workload_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The binding rows of ``args.workload`` (``KIND/NAME`` or the binding's name); none is an error."""
    wanted = args.workload.lower()
    rows = [r for r in _binding_rows(args) if wanted in (r["workload"].lower(), r["binding"].lower())]
    if not rows:
        where = "any namespace" if args.all_namespaces else f"namespace {args.namespace!r}"
        hint = "" if args.all_namespaces else " (try -A)"
        raise CliError(f"workload {args.workload!r} not found in {where}{hint}", EXIT_ERROR)
    return rows


def _find_binding(args: argparse.Namespace) -> dict[str, Any]:
    """The binding of ``args.workload`` (``KIND/NAME`` or the binding's name) in ``args.namespace``."""
    rows = _workload_rows(args)
    if len(rows) > 1:
        spots = ", ".join(f"{r['namespace']}/{r['workload']}" for r in rows)
        raise CliError(f"workload {args.workload!r} is ambiguous ({spots}): use -n NAMESPACE", EXIT_USAGE)
    body: dict[str, Any] = rows[0]["_body"]
    return body


def request_move(api: Any, binding: Mapping[str, Any], to: str) -> bool:
    """Ask the operator to move the workload of ``binding`` whole to MemberCluster ``to`` (the
    binding's ``flotilla.dev/move-to`` annotation; the failover controller does the move through
    the scheduler). Returns False when it is there already. Raises :class:`CliError` when the
    MemberCluster does not exist."""
    from flotilla import kube
    from flotilla.api import GROUP_VERSION
    from flotilla.controllers.eviction import MOVE_ANNOTATION

    if kube.get(api, GROUP_VERSION, "MemberCluster", to) is None:
        raise CliError(f"membercluster {to!r} not found")
    if [c.get("name") for c in (binding.get("spec") or {}).get("clusters") or ()] == [to]:
        return False
    kube.patch(api, dict(binding), {"metadata": {"annotations": {MOVE_ANNOTATION: to}}})
    return True


def _move_outcome(api: Any, binding: Mapping[str, Any], to: str) -> tuple[bool, str] | None:
    """None while the move is asked for; then (done, why not)."""
    from flotilla import kube
    from flotilla.api import GROUP_VERSION
    from flotilla.controllers.eviction import MOVE_ANNOTATION

    meta = binding["metadata"]
    rb = kube.get(api, GROUP_VERSION, "ResourceBinding", meta["name"], meta["namespace"])
    if rb is None:
        return False, "the workload's binding is gone"
    if MOVE_ANNOTATION in (rb["metadata"].get("annotations") or {}):
        return None
    if [c.get("name") for c in rb["spec"].get("clusters") or ()] == [to]:
        return True, ""
    name = rb["spec"]["resource"]["name"]
    events = [
        e
        for e in kube.list_objects(api, "v1", "Event", meta["namespace"])
        if e.get("reason") == "MoveFailed" and (e.get("involvedObject") or {}).get("name") == name
    ]
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return False, events[-1].get("message", "") if events else "the operator did not move it"


def _cmd_move(args: argparse.Namespace) -> int:
    api = _hub(args)
    binding = _find_binding(args)
    what = f"{binding['metadata']['namespace']}/{binding['spec']['resource']['kind']}/"
    what += binding["spec"]["resource"]["name"]
    if not request_move(api, binding, args.to):
        print(f"{what} is already on {args.to}")
        return EXIT_OK
    if not args.wait:
        print(f"{what}: move to {args.to} requested")
        return EXIT_OK
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        outcome = _move_outcome(api, binding, args.to)
        if outcome is not None:
            done, why = outcome
            if not done:
                raise CliError(f"{what} was not moved: {_one_line(why)}", EXIT_ERROR)
            print(f"{what} moved to {args.to}")
            return EXIT_OK
        time.sleep(0.5)
    raise CliError(f"{what}: the move to {args.to} was not done within {args.timeout:.0f}s", EXIT_ERROR)


def quota_rows(quotas: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What ``quota`` reports: per FederatedResourceQuota and resource, the fleet-wide hard limit,
    use and what is left (cluster ``*``), then one row per cluster with a static assignment or use."""
    from flotilla.inventory.convert import format_quantity
    from flotilla.quota.ledger import parse_quota_list
    from flotilla.quota.usage import quota_resource

    def fmt(resource: str, amount: int | None) -> str:
        return "-" if amount is None else format_quantity(quota_resource(resource) or resource, amount)

    rows: list[dict[str, Any]] = []
    for q in sorted(quotas, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        meta, status = q["metadata"], q.get("status") or {}
        hard = parse_quota_list((q.get("spec") or {}).get("overall"))
        used = parse_quota_list(status.get("overallUsed"))
        state = "Exceeded" if _condition(q, "Exceeded").get("status") == "True" else "OK"
        if status.get("observedGeneration") is None:
            state = "Pending"
        base = {"namespace": meta.get("namespace", ""), "quota": meta["name"]}
        for resource in sorted(hard):
            have = used.get(resource, 0)
            rows.append(
                base
                | {
                    "resource": resource,
                    "cluster": "*",
                    "hard": fmt(resource, hard[resource]),
                    "used": fmt(resource, have),
                    "left": fmt(resource, max(hard[resource] - have, 0)),
                    "status": state,
                }
            )
        for entry in status.get("aggregatedStatus") or ():
            c_hard = parse_quota_list(entry.get("hard"))
            c_used = parse_quota_list(entry.get("used"))
            for resource in sorted(set(c_hard) | set(c_used)):
                limit = c_hard.get(resource)
                have = c_used.get(resource, 0)
                rows.append(
                    base
                    | {
                        "resource": resource,
                        "cluster": entry["clusterName"],
                        "hard": fmt(resource, limit),
                        "used": fmt(resource, have),
                        "left": "-" if limit is None else fmt(resource, max(limit - have, 0)),
                        "status": "",
                    }
                )
    return rows


def _cmd_quota(args: argparse.Namespace) -> int:
    from flotilla import kube
    from flotilla.api import GROUP_VERSION

    api = _hub(args)  # first: it sets the default namespace from the kubeconfig context
    namespace = None if args.all_namespaces else args.namespace
    quotas = kube.list_objects(api, GROUP_VERSION, "FederatedResourceQuota", namespace)
    columns = [
        ("NAMESPACE", "namespace"),
        ("QUOTA", "quota"),
        ("RESOURCE", "resource"),
        ("CLUSTER", "cluster"),
    ]
    columns += [("HARD", "hard"), ("USED", "used"), ("LEFT", "left"), ("STATUS", "status")]
    rows = quota_rows(quotas)
    if not rows and args.output in ("table", "wide"):
        where = "any namespace" if namespace is None else f"namespace {namespace!r}"
        print(f"no FederatedResourceQuota in {where}", file=sys.stderr)
        return 0
    _emit(rows, columns, args.output)
    return 0


def _labels(values: Sequence[str]) -> dict[str, str]:
    """``--labels k=v,k2=v2`` (repeatable) as a dict; a malformed entry is a usage error."""
    out: dict[str, str] = {}
    for value in values:
        for item in (i.strip() for i in value.split(",")):
            key, sep, val = item.partition("=")
            if not item:
                continue
            if not sep or not key:
                raise CliError(f"--labels {item!r}: expected KEY=VALUE", EXIT_USAGE)
            out[key] = val
    return out


def _member(args: argparse.Namespace) -> Any:
    """The member as the user reaches it: ``--cluster-kubeconfig`` (else the hub's kubeconfig
    files) in ``--cluster-context`` (else that file's current-context)."""
    from kubernetes import client

    from flotilla.join import Member, endpoint_from_configuration

    path = args.cluster_kubeconfig
    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise CliError(f"--cluster-kubeconfig {path}: no such file")
        if not os.access(file, os.R_OK):
            raise CliError(f"--cluster-kubeconfig {path}: not readable")
    else:
        path = _hub_path(args)
    cfg, _namespace = _load_kubeconfig(path, args.cluster_context, "member kubeconfig")
    try:
        endpoint = endpoint_from_configuration(cfg, getattr(args, "cluster_server", None))
    except OSError as exc:
        raise CliError(f"cannot read the member's CA certificate: {exc}") from None
    context = f" (context {args.cluster_context})" if args.cluster_context else ""
    return Member(client.ApiClient(cfg), endpoint, f"member cluster {cfg.host}{context}")


def _join_names(args: argparse.Namespace) -> Any:
    from flotilla.join import MemberNames, validate_name

    problem = validate_name(args.name)
    if problem:
        raise CliError(problem, EXIT_USAGE)
    return MemberNames(args.name, hub_namespace=args.cluster_namespace)


def _cmd_join(args: argparse.Namespace) -> int:
    from flotilla import yamlout
    from flotilla.join import member_rules, run_join

    names = _join_names(args)
    labels = _labels(args.labels or [])
    location = {"provider": args.provider, "region": args.region, "zone": args.zone}
    if not args.cluster_kubeconfig and not args.cluster_context:
        raise CliError("join needs --cluster-kubeconfig FILE and/or --cluster-context NAME", EXIT_USAGE)
    if args.dry_run:
        docs = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": names.member_namespace}},
            *names.member_objects(member_rules()),
            names.member_cluster(labels, location),
        ]
        print("# the member's objects, then the hub's MemberCluster (its kubeconfig Secret holds the token)")
        print("---\n".join(yamlout.dump(d) for d in docs), end="")
        return EXIT_OK
    member = _member(args)
    run_join(_hub(args), member, names, labels, location, print, timeout=args.timeout)
    return EXIT_OK


def _cmd_unjoin(args: argparse.Namespace) -> int:
    from flotilla.join import run_unjoin

    names = _join_names(args)
    # The member's kubeconfig is loaded (not contacted) before anything changes: a wrong path
    # fails here, not after the hub side is gone.
    member = _member(args) if args.cluster_kubeconfig or args.cluster_context else None
    run_unjoin(
        _hub(args), names, member, print, lambda line: print(f"flotilla: warning: {line}", file=sys.stderr)
    )
    return EXIT_OK


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

    def hub_connection(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--kubeconfig",
            help="hub kubeconfig (default: KUBECONFIG, then the local rig's hub, then ~/.kube/config)",
        )
        p.add_argument("--context", help="kubeconfig context to use (default: its current-context)")
        p.set_defaults(hub_command=True)

    def hub_options(p: argparse.ArgumentParser, namespaced: bool = True) -> None:
        hub_connection(p)
        p.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"], default="table")
        if namespaced:
            p.add_argument(
                "-n", "--namespace", default=None, help="default: the kubeconfig context's namespace"
            )
            p.add_argument("-A", "--all-namespaces", action="store_true")

    def member_connection(p: argparse.ArgumentParser, purpose: str) -> None:
        p.add_argument("name", help="MemberCluster name")
        p.add_argument(
            "--cluster-kubeconfig",
            metavar="FILE",
            help=f"the member's kubeconfig, with rights to {purpose} (with only --cluster-context: "
            "the hub's kubeconfig files)",
        )
        p.add_argument(
            "--cluster-context", metavar="NAME", help="context of the member (default: current-context)"
        )
        p.add_argument(
            "--cluster-namespace",
            default="flotilla-system",
            metavar="NS",
            help="hub namespace of the member's kubeconfig Secret (default: flotilla-system)",
        )
        hub_connection(p)

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
    explain = sub.add_parser(
        "explain",
        help="what-if: where the workloads of a manifest not yet applied would go, per cluster and plugin",
    )
    explain.add_argument(
        "-f", "--filename", required=True, help="manifest (YAML, several documents; - for stdin)"
    )
    hub_options(explain)
    explain.set_defaults(func=_cmd_explain)
    for name, help_ in (
        ("cordon", "mark a member cluster unschedulable: no new workloads go there"),
        ("uncordon", "mark a member cluster schedulable again"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("cluster", help="MemberCluster name")
        hub_options(p, namespaced=False)
        p.set_defaults(func=_cmd_cordon)
    move = sub.add_parser(
        "move",
        help="move a workload whole to another member cluster (through the scheduler; its policy applies)",
        description="Sets the workload's ResourceBinding annotation flotilla.dev/move-to; the operator "
        "schedules the workload onto that cluster alone and removes the copies it leaves by the "
        "policy's purge mode. See docs/failover.md.",
    )
    move.add_argument("workload", help="KIND/NAME or binding name")
    move.add_argument("--to", required=True, metavar="CLUSTER", help="the MemberCluster to move it to")
    move.add_argument("--wait", action="store_true", help="wait until it is moved (or refused)")
    move.add_argument("--timeout", type=float, default=120.0, help="seconds --wait waits (default 120)")
    hub_options(move)
    move.set_defaults(func=_cmd_move)
    join = sub.add_parser(
        "join",
        help="register a member cluster: least-privilege ServiceAccount on it, MemberCluster on the hub",
        description="On the member: namespace flotilla-system, ServiceAccount flotilla-NAME, ClusterRole "
        "and ClusterRoleBinding flotilla:member:NAME, token Secret. On the hub: Secret NAME-kubeconfig "
        "and MemberCluster NAME. Running it again updates them. See docs/cli.md.",
    )
    member_connection(join, "create RBAC objects")
    join.add_argument(
        "--cluster-server",
        metavar="URL",
        help="the member's API server URL as the operator reaches it (default: the kubeconfig's server)",
    )
    join.add_argument("--cluster-provider", "--provider", dest="provider", help="spec.provider, e.g. aws")
    join.add_argument("--cluster-region", "--region", dest="region", help="spec.region, e.g. eu-west")
    join.add_argument("--cluster-zone", "--zone", dest="zone", help="spec.zone, e.g. eu-west-1a")
    join.add_argument(
        "--labels", action="append", metavar="K=V[,K=V]", help="MemberCluster labels (repeatable)"
    )
    join.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the member to issue the token"
    )
    join.add_argument("--dry-run", action="store_true", help="print the objects (YAML) and change nothing")
    join.set_defaults(func=_cmd_join)
    unjoin = sub.add_parser(
        "unjoin",
        help="remove a member cluster: the MemberCluster and its Secret, and what join made on the member",
    )
    member_connection(
        unjoin, "delete what join made there (without either flag, those objects are listed, not removed)"
    )
    unjoin.set_defaults(func=_cmd_unjoin)
    quota = sub.add_parser(
        "quota", help="FederatedResourceQuotas: hard, used and left per resource and cluster"
    )
    hub_options(quota)
    quota.set_defaults(func=_cmd_quota)
    completion = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description="eval \"$(kubectl-flotilla completion bash)\"; for 'kubectl flotilla <TAB>' "
        "see docs/cli.md (kubectl_complete-flotilla).",
    )
    completion.add_argument("shell", choices=["bash", "zsh"])
    completion.set_defaults(func=_cmd_completion)
    version = sub.add_parser("version", help="print the Flotilla version")
    version.set_defaults(func=lambda _a: print(f"flotilla {__import__('flotilla').__version__}") or 0)

    demo = sub.add_parser("demo", help="the embedded default: local hub + GPU members, Flotilla, examples")
    demo.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    demo.add_argument("--fleet", default=str(default_fleet_path()), help="fleet description YAML")
    demo.add_argument("--detach", action="store_true", help="leave everything running and return")
    demo.set_defaults(func=_cmd_demo)
    return parser


def _cmd_completion(args: argparse.Namespace) -> int:
    from flotilla.completion import script

    print(script(args.shell), end="")
    return EXIT_OK


def complete_main(words: Sequence[str] | None = None) -> int:
    """``kubectl-flotilla __complete WORD...`` (and a ``kubectl_complete-flotilla`` executable):
    completion candidates in cobra's protocol, see :mod:`flotilla.completion`."""
    from flotilla.completion import complete, hub_clusters, kubeconfig_contexts, render

    candidates, directive = complete(
        build_parser(),
        list(sys.argv[1:] if words is None else words),
        clusters=hub_clusters(_hub),
        contexts=kubeconfig_contexts(_hub_path),
    )
    print(render(candidates, directive), end="")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["__complete"]:
        return complete_main(words[1:])
    args = build_parser().parse_args(words)
    t0 = time.monotonic()
    if getattr(args, "hub_command", False):
        import warnings

        import urllib3

        # insecure-skip-tls-verify is the kubeconfig's choice: kubectl does not warn per request.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    try:
        rc: int = args.func(args)
    except Exception as exc:
        # Hub commands: API, connection and kubeconfig errors are one line and a distinct exit
        # code (EXIT_*); anything else is a bug and keeps its traceback.
        line = error_line(exc) if getattr(args, "hub_command", False) else None
        if line is None:
            raise
        print(f"flotilla: error: {line}", file=sys.stderr)
        return exit_code(exc)
    if os.environ.get("FLOTILLA_TIMING"):
        print(f"({time.monotonic() - t0:.1f}s)", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
