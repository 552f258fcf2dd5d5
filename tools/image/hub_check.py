"""Run the operator image (unpacked by tools/image/check.sh) against a running rig's hub.

The image's entrypoint runs as uid 65532 on a read-only root with a tmpfs /tmp (see check.sh
``--run``); the hub's kubeconfig is bind-mounted read-only, as a Secret volume would be. This
script installs the CRDs, starts the container, waits for "Flotilla ... started", registers the
rig's members (a kubeconfig Secret and a MemberCluster each, as ``flotilla demo`` does) and waits
for them to turn Ready; with ``--examples`` it also applies examples/ and waits for placements.
The operator gets the chart's argument, ``--liveness=...``, and its endpoint is probed.
The operator also serves the quota webhook the hub calls, writing its certificate under /tmp.

Usage (as root, from the checkout, with the dev venv):
    .venv/bin/flotilla dev up --workdir /tmp/imgrig
    tools/image/check.sh dist/image/oci:TAG --hub /tmp/imgrig   (TAG: see dist/image/IMAGE)
or directly:
    .venv/bin/python tools/image/hub_check.py --workdir /tmp/imgrig --bundle BUNDLE [--examples]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path

from flotilla import kube
from flotilla.api import GROUP_VERSION
from flotilla.rig import demo
from flotilla.rig.cluster import ClusterHandle, inline_kubeconfig
from flotilla.rig.runner import free_port, load_handles

HERE = Path(__file__).resolve().parent
KUBECONFIG_IN_IMAGE = "/var/run/flotilla/kubeconfig"


def say(msg: str) -> None:
    print(f"[image-hub] {msg}", file=sys.stderr, flush=True)


def wait_for_log(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if needle in line:
                return line
        if proc.poll() is not None:
            raise SystemExit(f"the operator exited ({proc.returncode}) before logging {needle!r}")
        time.sleep(0.5)
    raise SystemExit(f"no {needle!r} in the operator's log within {timeout:.0f}s")


def forget_status(hub: ClusterHandle, names: list[str]) -> None:
    """Clear the status of MemberClusters left by an earlier operator, so Ready must be set anew."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    group, version = GROUP_VERSION.split("/")
    api = client.CustomObjectsApi(hub.api_client())
    for name in names:
        try:
            api.patch_cluster_custom_object_status(group, version, "memberclusters", name, {"status": None})
        except ApiException as exc:
            if exc.status != 404:
                raise
        else:
            say(f"cleared the status an earlier operator left on MemberCluster {name}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, required=True, help="the rig's --workdir")
    p.add_argument("--bundle", type=Path, required=True, help="the image unpacked by umoci")
    p.add_argument("--seconds", type=float, default=20.0, help="keep the operator running at least this long")
    p.add_argument("--examples", action="store_true", help="also apply examples/ and wait for placements")
    args = p.parse_args()

    handles = load_handles(args.workdir.resolve())
    hub = next((h for h in handles if h.role == "hub"), None)
    if hub is None:
        raise SystemExit(f"no rig running under {args.workdir} (flotilla dev up --workdir {args.workdir})")
    members = [h for h in handles if h.role == "member"]
    kube.install_crds(hub.api_client(), demo.flotilla_crds())
    forget_status(hub, [m.name for m in members])

    tmp = Path(tempfile.mkdtemp(prefix="flotilla-image-hub."))
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(inline_kubeconfig(hub))
    os.chown(kubeconfig, 65532, 65532)  # readable by the container's user only, like a Secret volume
    kubeconfig.chmod(0o400)
    log = tmp / "operator.log"
    env = {"KUBECONFIG": KUBECONFIG_IN_IMAGE, "FLOTILLA_METRICS_PORT": "0", **demo.webhook_env(hub)}
    cmd = ["bash", str(HERE / "check.sh"), "--run", str(args.bundle)]
    cmd += ["--mount", f"{kubeconfig}:{KUBECONFIG_IN_IMAGE}"]
    for k, v in env.items():
        cmd += ["--env", f"{k}={v}"]
    # The chart's argument (its liveness probe's endpoint), on a free port of this machine.
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    cmd += ["--", f"--liveness={liveness}"]
    say(f"starting the image's entrypoint against hub {hub.server} (log {log})")
    t0 = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    ok = False
    try:
        line = wait_for_log(log, "started", proc, timeout=60)
        say(f"after {time.monotonic() - t0:.1f}s: {line.strip()}")
        with urllib.request.urlopen(liveness, timeout=5) as resp:
            say(f"liveness probe {liveness}: HTTP {resp.status}")
        for m in members:
            demo.register_member(hub, m)
        for m in members:
            kube.wait_for(partial(demo.member_ready, hub, m.name), timeout=90, what=f"member {m.name} Ready")
        say(f"after {time.monotonic() - t0:.1f}s: members Ready: {', '.join(m.name for m in members)}")
        if args.examples:
            applied = demo.apply_examples(hub, say)
            workloads = [
                d for d in applied if not d["apiVersion"].startswith("flotilla.dev/") and d.get("spec")
            ]
            rows = demo.placement_report(hub, expected=len(workloads))
            for workload, where, detail in rows:
                say(f"placed {workload} -> {where}: {detail}")
        while time.monotonic() - t0 < args.seconds:
            if proc.poll() is not None:
                raise SystemExit(
                    f"the operator exited ({proc.returncode}) after {time.monotonic() - t0:.1f}s"
                )
            time.sleep(0.5)
        say(f"still running after {time.monotonic() - t0:.1f}s; stopping it with SIGTERM")
        ok = True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        demo.remove_webhook(hub)  # its failure policy is Fail: the rig's hub needs it gone
        text = log.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if "Traceback" in ln or " ERROR" in ln or "[ERROR" in ln]
        say(f"operator exit code {proc.returncode}; {len(text.splitlines())} log lines, {len(errors)} errors")
        for ln in errors[:10]:
            say(f"  {ln}")
        if not ok:
            sys.stderr.write(text[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)  # the hub's admin kubeconfig and the log
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
