"""Start and stop a hub plus member clusters as plain processes on 127.0.0.1.

Each cluster gets its own etcd and kube-apiserver. Members also run kube-controller-manager,
kube-scheduler and KWOK, so Deployments and Jobs become Pods that bind to simulated GPU nodes
and turn Running (Job pods complete). Members with ``trainingOperator: true`` also run the Kubeflow
training operator (PyTorchJob controller only), so PyTorchJobs there become master/worker pods. The
hub runs only the namespace, garbage-collector and
service-account controllers, so workload objects there stay templates (``hub.controllers: true``
runs the ordinary set instead, for the hub-with-controllers mode, where ``hub.scheduler``,
``hub.nodePools`` and ``hub.trainingOperator`` add what a member runs).

Everything the rig starts is recorded by PID in ``<workdir>/state.json``; ``down`` stops only
those processes (after checking that each PID still runs the binary the rig started).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes.client import ApiClient

from flotilla import certs, kube, yamlout
from flotilla.rig.binaries import CORE_COMPONENTS, Binaries, ensure
from flotilla.rig.cluster import ClusterHandle, write_kubeconfig
from flotilla.rig.fleet import ClusterSpec, Fleet

HUB_CONTROLLERS = "namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation"


# Members bin-pack (MostAllocated, GPUs weighted, no spreading scores), as GPU clusters usually
# configure it, so that single-GPU pods fill partly used nodes instead of breaking the whole
# 8-GPU nodes that gangs need.
def scheduler_config(kubeconfig: Path) -> str:
    """The kube-scheduler ``--config`` file of a member (strings quoted: see :mod:`flotilla.yamlout`)."""
    return yamlout.dump(
        {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "leaderElection": {"leaderElect": False},
            "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 200, "burst": 400},
            "profiles": [
                {
                    "schedulerName": "default-scheduler",
                    "plugins": {
                        "score": {
                            "disabled": [
                                {"name": "PodTopologySpread"},
                                {"name": "NodeResourcesBalancedAllocation"},
                            ]
                        }
                    },
                    "pluginConfig": [
                        {
                            "name": "NodeResourcesFit",
                            "args": {
                                "scoringStrategy": {
                                    "type": "MostAllocated",
                                    "resources": [
                                        {"name": "nvidia.com/gpu", "weight": 10},
                                        {"name": "cpu", "weight": 1},
                                        {"name": "memory", "weight": 1},
                                    ],
                                }
                            },
                        }
                    ],
                }
            ],
        }
    )


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)

# The Kubeflow training operator keeps its webhook CA in this Secret (it must exist beforehand: in a
# real deployment its manifests create it) and, as cert-controller's rotator, waits until a
# tls.crt exists under a fixed path, which in a pod is the Secret's volume mount.
TRAINING_OPERATOR_NAMESPACE = "kubeflow"
TRAINING_OPERATOR_SECRET = "training-operator-webhook-cert"
TRAINING_OPERATOR_SERVICE = "training-operator"
TRAINING_OPERATOR_MOUNTED_CERT = Path("/tmp/k8s-webhook-server/serving-certs/tls.crt")
# Stop order: agents that talk to an API server first, etcd last. The karmada-* processes are the
# Karmada peer's (flotilla.rig.peer), which runs its own rig workdir.
STOP_ORDER = (
    "flotilla-operator",
    "karmada-controller-manager",
    "karmada-scheduler",
    "karmada-webhook",
    "karmada-aggregated-apiserver",
    "training-operator",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)


class RigError(RuntimeError):
    """The rig could not start; every process it had started has been stopped."""


def _log(msg: str, t0: float) -> None:
    print(f"[rig {time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, owner: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise RigError(f"{owner}: port 127.0.0.1:{port} is already in use") from None


def _pid_runs(pid: int, binary: str) -> bool:
    """Whether ``pid`` still runs ``binary`` (argv[0], or argv[1] for an interpreted script)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]
    except OSError:
        return False
    return binary.encode() in argv


def stop_pid(pid: int, binary: str, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, a process the rig started (checked by cmdline)."""
    if not _pid_runs(pid, binary):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child; otherwise just probe.
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not _pid_runs(pid, binary):
                return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _stop_child(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process this Python process started (its PID cannot have been reused: not reaped yet)."""
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()


@dataclass
class _Proc:
    name: str
    binary: str
    popen: subprocess.Popen[bytes]
    log: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None


@dataclass
class Rig:
    """A running (or startable) fleet of local clusters."""

    fleet: Fleet
    workdir: Path
    binaries: Binaries | None = None
    verbose: bool = True
    hub: ClusterHandle | None = None
    members: dict[str, ClusterHandle] = field(default_factory=dict)
    apiserver_args: dict[str, list[str]] = field(default_factory=dict)
    """Extra kube-apiserver flags by cluster name (the Karmada peer's aggregation-layer flags)."""
    etcd_urls: dict[str, str] = field(default_factory=dict)
    """Each started cluster's etcd client URL (the Karmada aggregated API server shares it)."""
    _procs: dict[str, list[_Proc]] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)

    # ----------------------------------------------------------------- public
    @property
    def clusters(self) -> list[ClusterHandle]:
        return ([self.hub] if self.hub else []) + list(self.members.values())

    def up(self, timeout: float = 240.0, shared_dir: Path | None = None) -> Rig:
        """Start hub and members; on any failure stop what was started and raise RigError."""
        self._t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            components = self.fleet.components(CORE_COMPONENTS)
            self.binaries = self.binaries or ensure(components=components)
            if self.binaries.missing(components):
                raise RigError(
                    f"missing rig binaries: {', '.join(map(str, self.binaries.missing(components)))}; "
                    "run tools/rig-bin/build.sh"
                )
            self._prepare_pki()
            specs: list[tuple[str, ClusterSpec | None]] = [(self.fleet.hub.name, None)]
            specs += [(m.name, m) for m in self.fleet.members]
            for name, spec in specs:
                port = spec.port if spec else self.fleet.hub.port
                if port is not None:
                    check_port_free(port, f"cluster {name}")
            self._say(
                f"starting {len(specs)} control planes (hub {self.fleet.hub.name!r} + "
                f"{len(self.fleet.members)} members) under {self.workdir}"
            )
            # Two at a time: an API server's start-up is CPU-bound and the machine may have 2 cores.
            with ThreadPoolExecutor(max_workers=2) as pool:
                handles = list(pool.map(lambda s: self._start_control_plane(s[0], s[1], timeout), specs))
            self.hub, member_handles = handles[0], handles[1:]
            self.members = {h.name: h for h in member_handles}
            for member in self.fleet.members:
                self._start_member_agents(member, self.members[member.name], shared_dir, timeout)
            self._start_hub_agents(timeout)
            self.save_state()
            self._say(f"fleet ready in {time.monotonic() - self._t0:.1f}s")
            return self
        except BaseException as exc:
            self.down()
            if isinstance(exc, RigError):
                raise
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise RigError(f"rig failed to start: {exc}") from exc

    def adopt(
        self,
        hub: ClusterHandle,
        members: dict[str, ClusterHandle],
        timeout: float = 240.0,
        shared_dir: Path | None = None,
    ) -> Rig:
        """Prepare clusters someone else started (e.g. kind) the way ``up`` prepares its own: the
        fleet's third-party CRDs, KWOK GPU nodes (KWOK runs here, against each member) and, where the
        fleet asks for it, the training operator (also run here)."""
        self._t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.binaries = self.binaries or ensure(components=self.fleet.components(("kwok",)))
            self.hub, self.members = hub, dict(members)
            for member in self.fleet.members:
                if member.name not in self.members:
                    raise RigError(f"fleet member {member.name!r} has no kubeconfig")
                self.members[member.name].labels = dict(member.labels)
                self._start_member_agents(member, self.members[member.name], shared_dir, timeout)
            self._start_hub_agents(timeout)
            return self
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop every process this rig started (members' agents first, then API servers, then etcd)."""
        for kind in STOP_ORDER:
            for procs in self._procs.values():
                for p in procs:
                    if p.name == kind:
                        _stop_child(p.popen)
        self._procs.clear()
        state = self.workdir / "state.json"
        if state.exists():
            state.unlink()

    def stop_component(self, cluster: str, name: str, *, crash: bool = True) -> None:
        """Stop one process of a cluster (e.g. a member's ``kube-apiserver``): killed, as if it
        crashed, or with ``crash=False`` terminated gracefully. :meth:`start_component` brings it
        back. For failure tests."""
        proc = self._proc(cluster, name)
        if crash and proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
        _stop_child(proc.popen)

    def start_component(self, cluster: str, name: str, timeout: float = 120.0) -> None:
        """Start a process stopped by :meth:`stop_component` again, with the same arguments (its
        port, data and certificates are kept); for an API server, wait until it is ready."""
        old = self._proc(cluster, name)
        if old.popen.poll() is None:
            return
        self._procs[cluster].remove(old)
        proc = self._spawn(cluster, name, Path(old.binary), old.args, old.env)
        handle = self.hub if self.hub is not None and self.hub.name == cluster else self.members.get(cluster)
        if handle is not None:
            handle.pids[name] = proc.popen.pid
            if name == "kube-apiserver":
                self._wait(f"{cluster}: kube-apiserver", proc, handle.ready, timeout)
        self.save_state()

    def spawn(
        self, cluster: str, name: str, binary: Path, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start one more process that belongs to ``cluster`` (logged to ``<workdir>/<cluster>/<name>.log``,
        stopped by :meth:`down` in :data:`STOP_ORDER`, recorded in ``state.json``)."""
        if name not in STOP_ORDER:
            raise RigError(f"process name {name!r} is not in STOP_ORDER; down() would not stop it")
        proc = self._spawn(cluster, name, binary, args, env)
        self.save_state()
        return proc.popen

    def process_log(self, cluster: str, name: str) -> Path:
        return self._proc(cluster, name).log

    def _proc(self, cluster: str, name: str) -> _Proc:
        for proc in self._procs.get(cluster, []):
            if proc.name == name:
                return proc
        raise RigError(f"cluster {cluster!r} has no process {name!r}")

    def save_state(self) -> None:
        data = {
            "clusters": [c.to_json() for c in self.clusters],
            "processes": [
                {"cluster": cluster, "name": p.name, "pid": p.popen.pid, "binary": p.binary}
                for cluster, procs in self._procs.items()
                for p in procs
            ],
        }
        (self.workdir / "state.json").write_text(json.dumps(data, indent=2))

    # ---------------------------------------------------------------- private
    def _say(self, msg: str) -> None:
        if self.verbose:
            _log(msg, self._t0)

    def _prepare_pki(self) -> None:
        pki = self.workdir / "pki"
        ca_crt, ca_key = certs.make_ca(pki, "flotilla-rig-ca")
        if not (pki / "serving.crt").exists():
            certs.make_leaf(
                pki, "serving", ca_cert=ca_crt, ca_key=ca_key, ips=("127.0.0.1",), dns=("localhost",)
            )

    def _spawn(
        self, cluster: str, name: str, binary: Path, args: list[str], env: dict[str, str] | None = None
    ) -> _Proc:
        log = self.workdir / cluster / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                [str(binary), *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **env} if env else None,
            )
        proc = _Proc(name=name, binary=str(binary), popen=popen, log=log, args=list(args), env=env)
        self._procs.setdefault(cluster, []).append(proc)
        return proc

    def _wait(self, what: str, proc: _Proc, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if proc.popen.poll() is not None:
                tail = proc.log.read_text(errors="replace").splitlines()[-15:]
                raise RigError(
                    f"{what} exited with code {proc.popen.returncode}; last log lines "
                    f"({proc.log}):\n    " + "\n    ".join(tail)
                )
            if time.monotonic() > deadline:
                raise RigError(f"{what} did not become ready within {timeout:.0f}s; see {proc.log}")
            time.sleep(0.25)

    def _start_control_plane(self, name: str, spec: ClusterSpec | None, timeout: float) -> ClusterHandle:
        assert self.binaries is not None
        b = self.binaries
        d = self.workdir / name
        d.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(d / "etcd", ignore_errors=True)  # a fresh `up` starts from empty clusters
        pki = self.workdir / "pki"
        sa_key = certs.make_rsa_key(d / "sa.key")
        token = secrets.token_hex(16)
        (d / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')

        etcd_client, etcd_peer = free_port(), free_port()
        etcd = self._spawn(
            name,
            "etcd",
            b.etcd,
            [
                f"--name={name}",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster={name}=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
        )

        def etcd_ok() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{etcd_client}/health", timeout=2) as r:
                    return b'"health":"true"' in r.read()
            except OSError:
                return False

        self._wait(f"{name}: etcd", etcd, etcd_ok, timeout)
        self.etcd_urls[name] = f"http://127.0.0.1:{etcd_client}"
        port = (spec.port if spec else self.fleet.hub.port) or free_port()
        server = f"https://127.0.0.1:{port}"
        apiserver = self._spawn(
            name,
            "kube-apiserver",
            b.kube_apiserver,
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                f"--etcd-prefix=/{name}/registry",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={d / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'serving.crt'}",
                f"--tls-private-key-file={pki / 'serving.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--max-requests-inflight=2000",
                "--max-mutating-requests-inflight=1000",
                *self.apiserver_args.get(name, ()),
            ],
        )
        kubeconfig = d / "kubeconfig"
        write_kubeconfig(kubeconfig, name, server, pki / "ca.crt", token)
        handle = ClusterHandle(
            labels=dict(spec.labels) if spec else {},
            name=name,
            role="member" if spec else "hub",
            server=server,
            kubeconfig=kubeconfig,
            ca_file=pki / "ca.crt",
            token=token,
        )
        self._wait(f"{name}: kube-apiserver on {server}", apiserver, handle.ready, timeout)
        self._say(f"{name}: API server ready on {server}")
        controllers = spec is not None or self.fleet.hub.controllers
        kcm_args = [
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={sa_key}",
            "--use-service-account-credentials=false",
            "--cluster-name=" + name,
            "--node-monitor-grace-period=40s",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
        ]
        if not controllers:
            kcm_args.append(f"--controllers={HUB_CONTROLLERS}")
        self._spawn(name, "kube-controller-manager", b.kube_controller_manager, kcm_args)
        if spec.scheduler if spec is not None else self.fleet.hub.scheduler:
            config = d / "kube-scheduler.yaml"
            config.write_text(scheduler_config(kubeconfig))
            self._spawn(name, "kube-scheduler", b.kube_scheduler, [f"--config={config}", "--secure-port=0"])
        handle.pids = {p.name: p.popen.pid for p in self._procs[name]}
        return handle

    def _start_member_agents(
        self, spec: ClusterSpec, handle: ClusterHandle, shared_dir: Path | None, timeout: float
    ) -> None:
        assert self.binaries is not None
        api = handle.api_client()
        try:
            if spec.third_party_crds:
                crd_dir = _thirdparty_dir(shared_dir)
                kube.install_crds(api, [crd_dir / f for f in spec.third_party_crds], timeout=timeout)
            nodes = spec.nodes()
            for node in nodes:
                status = node.pop("status")
                created = kube.apply(api, node, field_manager="flotilla-rig")
                kube.request(
                    api,
                    "PATCH",
                    f"/api/v1/nodes/{created['metadata']['name']}/status",
                    body={"status": status},
                    content_type="application/merge-patch+json",
                )
            if nodes:
                stages = self.workdir / "kwok-stages.yaml"
                stages.write_text(
                    "\n---\n".join((self.binaries.kwok_stages / s).read_text() for s in KWOK_STAGES)
                )
                kwok = self._spawn(
                    spec.name,
                    "kwok",
                    self.binaries.kwok,
                    [
                        f"--kubeconfig={handle.kubeconfig}",
                        f"--config={stages}",
                        "--manage-all-nodes=false",
                        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                        "--node-lease-duration-seconds=40",
                        "--cidr=10.0.0.0/16",
                        "--node-ip=10.0.0.1",
                    ],
                )
                handle.pids["kwok"] = kwok.popen.pid

                def nodes_ready() -> bool:
                    items = kube.list_objects(api, "v1", "Node")
                    ready = sum(
                        1
                        for n in items
                        if any(
                            c["type"] == "Ready" and c["status"] == "True"
                            for c in n.get("status", {}).get("conditions", [])
                        )
                    )
                    return ready >= len(nodes)

                self._wait(f"{spec.name}: {len(nodes)} KWOK nodes Ready", kwok, nodes_ready, timeout)
            if spec.training_operator:
                self._start_training_operator(spec.name, handle, api, timeout)
            self._say(
                f"{spec.name}: {len(nodes)} GPU nodes ready, "
                f"{len(spec.third_party_crds)} third-party CRDs installed"
                + (", training operator running" if spec.training_operator else "")
            )
        finally:
            api.close()

    def _start_training_operator(
        self, name: str, handle: ClusterHandle, api: ApiClient, timeout: float
    ) -> None:
        """Run the Kubeflow training operator (PyTorchJob only, no gang scheduler) against a member.

        Metrics are off and the health probe listens on 127.0.0.1; its webhook server (which only
        takes a port, so it listens on every interface) serves a rig-CA certificate from a
        per-member TMPDIR. No ValidatingWebhookConfiguration is registered: the operator's
        cert rotator logs that it finds none and carries on, and PyTorchJobs reach the member
        unvalidated, as when the webhook is not installed."""
        assert self.binaries is not None
        self._prepare_pki()
        pki = self.workdir / "pki"
        tmp = self.workdir / name / "training-operator-tmp"
        cert_dir = tmp / "k8s-webhook-server" / "serving-certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        service_dns = f"{TRAINING_OPERATOR_SERVICE}.{TRAINING_OPERATOR_NAMESPACE}.svc"
        leaf = certs.make_leaf(
            cert_dir, "tls", ca_cert=pki / "ca.crt", ca_key=pki / "ca.key", dns=("localhost", service_dns)
        )
        if not TRAINING_OPERATOR_MOUNTED_CERT.exists():  # only its existence is checked
            TRAINING_OPERATOR_MOUNTED_CERT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(leaf.cert, TRAINING_OPERATOR_MOUNTED_CERT)
        kube.ensure_namespace(api, TRAINING_OPERATOR_NAMESPACE)
        kube.apply(
            api,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": TRAINING_OPERATOR_SECRET, "namespace": TRAINING_OPERATOR_NAMESPACE},
            },
            field_manager="flotilla-rig",
        )
        probe = free_port()
        proc = self._spawn(
            name,
            "training-operator",
            self.binaries.training_operator,
            [
                f"--kubeconfig={handle.kubeconfig}",
                "--enable-scheme=pytorchjob",
                "--leader-elect=false",
                "--metrics-bind-address=0",
                f"--health-probe-bind-address=127.0.0.1:{probe}",
                f"--webhook-server-port={free_port()}",
                f"--webhook-secret-name={TRAINING_OPERATOR_SECRET}",
                f"--webhook-service-name={TRAINING_OPERATOR_SERVICE}",
            ],
            env={"TMPDIR": str(tmp), "MY_POD_NAMESPACE": TRAINING_OPERATOR_NAMESPACE},
        )
        handle.pids["training-operator"] = proc.popen.pid

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{probe}/readyz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        self._wait(f"{name}: training-operator", proc, ready, timeout)

    def _start_hub_agents(self, timeout: float) -> None:
        """The hub's third-party CRDs; on a hub with controllers, also what a member runs beside its
        control plane (KWOK nodes, the training operator) when the fleet asks for it."""
        assert self.hub is not None
        spec = self.fleet.hub
        if spec.node_pools or spec.training_operator:
            self._start_member_agents(spec.as_cluster(), self.hub, None, timeout)
            return
        if not spec.third_party_crds:
            return
        api = self.hub.api_client()
        try:
            crd_dir = _thirdparty_dir(None)
            kube.install_crds(api, [crd_dir / f for f in spec.third_party_crds], timeout=timeout)
        finally:
            api.close()


def _thirdparty_dir(shared_dir: Path | None) -> Path:
    from flotilla.rig.binaries import repo_root

    base = shared_dir or Path(os.environ.get("FLOTILLA_SHARED_DIR", repo_root().parent / "shared"))
    path = base / "thirdparty-crds"
    if not path.is_dir():
        raise RigError(f"third-party CRDs not found at {path}; set FLOTILLA_SHARED_DIR to the shared/ folder")
    return path


def record_process(workdir: Path, cluster: str, name: str, pid: int, binary: str) -> None:
    """Add a process started outside the rig (e.g. the demo's operator) to ``state.json``."""
    state = workdir / "state.json"
    data = json.loads(state.read_text())
    data["processes"].append({"cluster": cluster, "name": name, "pid": pid, "binary": binary})
    state.write_text(json.dumps(data, indent=2))


def down_from_state(workdir: Path) -> int:
    """Stop the processes recorded in ``<workdir>/state.json`` (for ``flotilla dev down``)."""
    state = workdir / "state.json"
    if not state.exists():
        return 0
    data = json.loads(state.read_text())
    order = {name: i for i, name in enumerate(STOP_ORDER)}
    procs = sorted(data.get("processes", []), key=lambda p: order.get(p["name"], len(order)))
    for p in procs:
        stop_pid(int(p["pid"]), p["binary"])
    state.unlink()
    return len(procs)


def load_handles(workdir: Path) -> list[ClusterHandle]:
    state = workdir / "state.json"
    if not state.exists():
        return []
    return [ClusterHandle.from_json(c) for c in json.loads(state.read_text())["clusters"]]
