"""Real Karmada as a peer control plane over the rig's member clusters (for side-by-side benchmarks).

Karmada v1.18 (pinned in ``tools/rig-bin/versions.env``, built from its Go module by
``tools/rig-bin/build.sh karmada``) runs here as plain processes, the way the rig runs Kubernetes:

* ``karmada-apiserver``: the rig's kube-apiserver binary with its own etcd, kube-controller-manager
  (namespace, garbage-collector and service-account controllers only, as Karmada deploys it) and the
  aggregation-layer flags (front-proxy client certificate) its aggregated API server needs;
* Karmada's CRDs from the module (``charts/karmada/_crds``, with the kustomization's conversion-webhook
  patches), and its webhook configurations from ``artifacts/deploy/webhook-configuration.yaml``, with
  URLs on 127.0.0.1;
* ``karmada-webhook``, ``karmada-aggregated-apiserver`` (it serves ``cluster.karmada.io`` Clusters
  through an APIService; its Service is an ExternalName on localhost), ``karmada-controller-manager``
  and ``karmada-scheduler``, with the flags of Karmada's own deployment manifests
  (``artifacts/deploy``: ``--feature-gates=AllAlpha=true,AllBeta=true``; logging left at its default
  level, and the scheduler-estimator off: it is a separate component not built here).

Members join in Push mode as ``karmadactl join`` joins them: a ServiceAccount ``karmada-<member>`` in
namespace ``karmada-cluster`` on the member with Karmada's ClusterRole, its token and CA in a Secret
on the Karmada control plane, and a ``Cluster`` with the member's API endpoint, labels and
provider/region/zones.

Command line (``make peer`` / ``make peer-down``)::

    python -m flotilla.rig.peer up [--workdir .rig]     # over the rig running under .rig
    python -m flotilla.rig.peer status|down [--workdir .rig]
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from flotilla import certs, kube
from flotilla.rig.binaries import KarmadaBinaries, ensure_karmada
from flotilla.rig.cluster import ClusterHandle
from flotilla.rig.fleet import Fleet, HubSpec
from flotilla.rig.runner import Rig, RigError, down_from_state, free_port, load_handles

NAME = "karmada"
SYSTEM_NS = "karmada-system"
CLUSTER_NS = "karmada-cluster"
CLUSTER_API = "cluster.karmada.io/v1alpha1"
POLICY_API = "policy.karmada.io/v1alpha1"
WORK_API = "work.karmada.io/v1alpha2"
AGGREGATED_SERVICE = "karmada-aggregated-apiserver"
FEATURE_GATES = "AllAlpha=true,AllBeta=true"  # as artifacts/deploy/*.yaml run every component
# karmadactl join's ClusterRole for the member ServiceAccount (pkg/util/credential.go ClusterPolicyRules).
MEMBER_RULES = [
    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
    {"nonResourceURLs": ["*"], "verbs": ["get"]},
]
KARMADA_SYSTEM_LABEL = {"karmada.io/system": "true"}
PROCESSES = (
    "karmada-webhook",
    "karmada-aggregated-apiserver",
    "karmada-controller-manager",
    "karmada-scheduler",
)


MAX_INT64 = str(2**63 - 1)


def gpu_resource_models() -> list[dict[str, Any]]:
    """Cluster ``spec.resourceModels`` with ``nvidia.com/gpu`` beside cpu and memory.

    Karmada's default models (set when a Cluster is created) grade nodes by cpu and memory only, so
    its general estimator, which simulates the graded nodes, finds room for no pod that requests a
    GPU. A Karmada operator who schedules GPU workloads adds GPU grades like these (the last grade
    of each resource ends at MaxInt64, as Karmada's validation requires)."""
    bounds = {
        "cpu": ["0", "1", "2", "8", "32", MAX_INT64],
        "memory": ["0", "4Gi", "16Gi", "64Gi", "256Gi", MAX_INT64],
        "nvidia.com/gpu": ["0", "1", "2", "4", "8", MAX_INT64],
    }
    return [
        {
            "grade": grade,
            "ranges": [{"name": name, "min": b[grade], "max": b[grade + 1]} for name, b in bounds.items()],
        }
        for grade in range(5)
    ]


def peer_workdir(rig_workdir: Path) -> Path:
    return rig_workdir / "peer"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _http_ready(url: str, ca: Path | None = None) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


@dataclass
class KarmadaPeer:
    """Karmada's control plane under ``workdir``, joined to ``members`` (rig handles)."""

    workdir: Path
    members: dict[str, ClusterHandle]
    verbose: bool = True
    binaries: KarmadaBinaries | None = None
    extra_crds: list[Path] = field(default_factory=list)
    """Third-party CRDs the workloads need on the karmada-apiserver (e.g. the rig hub's PyTorchJob)."""
    client_qps: float | None = None
    """None: Karmada's shipped client limits (40 QPS, burst 60, to its API server and to each member).
    A number sets --kube-api-qps (and --cluster-api-qps) of the controller manager and the scheduler to
    it, burst 1.5 times that, as Karmada's large-scale tuning advice does."""
    rig: Rig | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)

    @property
    def api(self) -> ClusterHandle:
        """The karmada-apiserver."""
        if self.rig is None or self.rig.hub is None:
            raise RigError("the Karmada peer is not running")
        return self.rig.hub

    def pids(self) -> dict[str, int]:
        """Every process of Karmada's control plane by name (its API server, etcd and KCM included)."""
        return dict(self.api.pids)

    def metrics_ports(self) -> dict[str, int]:
        return {k.removesuffix("-metrics"): v for k, v in self.ports.items() if k.endswith("-metrics")}

    # ----------------------------------------------------------------- public
    def up(self, timeout: float = 240.0) -> KarmadaPeer:
        """Start Karmada and join every member; on failure stop what was started and raise RigError."""
        self._t0 = time.monotonic()
        self.binaries = self.binaries or ensure_karmada()
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.workdir / "pki"
        ca_crt, ca_key = certs.make_ca(pki, "karmada-peer-ca")
        proxy = self.workdir / "front-proxy"
        proxy_ca, proxy_ca_key = certs.make_ca(proxy, "front-proxy-ca")
        proxy_client = certs.make_leaf(proxy, "front-proxy-client", ca_cert=proxy_ca, ca_key=proxy_ca_key)
        self.rig = Rig(
            fleet=Fleet(hub=HubSpec(name=NAME)),
            workdir=self.workdir,
            verbose=self.verbose,
            apiserver_args={
                NAME: [
                    f"--proxy-client-cert-file={proxy_client.cert}",
                    f"--proxy-client-key-file={proxy_client.key}",
                    f"--requestheader-client-ca-file={proxy_ca}",
                    "--requestheader-allowed-names=front-proxy-client",
                    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                    "--requestheader-group-headers=X-Remote-Group",
                    "--requestheader-username-headers=X-Remote-User",
                ]
            },
        )
        try:
            self.rig.up(timeout=timeout)
            api = self.api.api_client()
            kube.ensure_namespace(api, SYSTEM_NS)
            self._start_webhook(ca_crt, ca_key, timeout)
            self._install_crds(ca_crt, timeout)
            if self.extra_crds:
                kube.install_crds(api, self.extra_crds, timeout=timeout)
            self._register_webhooks(ca_crt)
            self._start_aggregated_apiserver(ca_crt, ca_key, timeout)
            self._start_controllers(timeout)
            for member in self.members.values():
                self.join(member)
            for name in self.members:
                kube.wait_for(
                    partial(self.cluster_ready, name),
                    timeout=timeout,
                    what=f"Karmada Cluster {name} Ready",
                )
            (self.workdir / "peer.json").write_text(
                json.dumps({"members": sorted(self.members), "ports": self.ports}, indent=2)
            )
            self._say(f"Karmada {self.binaries.version} ready over {sorted(self.members)}")
            return self
        except BaseException as exc:
            self.down()
            if isinstance(exc, (RigError, KeyboardInterrupt)):
                raise
            raise RigError(f"the Karmada peer failed to start: {exc}") from exc

    def down(self) -> None:
        if self.rig is not None:
            self.rig.down()

    def cluster_ready(self, name: str) -> bool:
        obj = kube.get(self.api.api_client(), CLUSTER_API, "Cluster", name)
        conds = ((obj or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def join(self, member: ClusterHandle, timeout: float = 60.0) -> None:
        """Join ``member`` in Push mode, with the objects ``karmadactl join`` creates."""
        m_api = member.api_client()
        sa = f"karmada-{member.name}"
        role = f"karmada-controller-manager:{sa}"
        kube.apply(
            m_api,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": CLUSTER_NS, "labels": KARMADA_SYSTEM_LABEL},
            },
        )
        for account in (sa, "karmada-impersonator"):
            kube.apply(
                m_api,
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": account, "namespace": CLUSTER_NS, "labels": KARMADA_SYSTEM_LABEL},
                },
            )
            kube.apply(
                m_api,
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "kubernetes.io/service-account-token",
                    "metadata": {
                        "name": account,
                        "namespace": CLUSTER_NS,
                        "annotations": {"kubernetes.io/service-account.name": account},
                    },
                },
            )
        kube.apply(
            m_api,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role, "labels": KARMADA_SYSTEM_LABEL},
                "rules": MEMBER_RULES,
            },
        )
        kube.apply(
            m_api,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": role, "labels": KARMADA_SYSTEM_LABEL},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": CLUSTER_NS}],
            },
        )

        def token_of(account: str) -> dict[str, Any] | None:
            secret = kube.get(m_api, "v1", "Secret", account, CLUSTER_NS)
            data = (secret or {}).get("data") or {}
            return data if data.get("token") else None

        cred = kube.wait_for(lambda: token_of(sa), timeout=timeout, what=f"{member.name}: {sa} token")
        imp = kube.wait_for(
            lambda: token_of("karmada-impersonator"),
            timeout=timeout,
            what=f"{member.name}: impersonator token",
        )
        k_api = self.api.api_client()
        kube.apply(
            k_api,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": CLUSTER_NS, "labels": KARMADA_SYSTEM_LABEL},
            },
        )
        # Secret data values are base64 already, as the member's token Secret holds them.
        ca = cred.get("ca.crt") or _b64(member.ca_file.read_bytes() if member.ca_file else b"")
        kube.apply(
            k_api,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": member.name, "namespace": CLUSTER_NS, "labels": KARMADA_SYSTEM_LABEL},
                "data": {"caBundle": ca, "token": cred["token"]},
            },
        )
        kube.apply(
            k_api,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": f"{member.name}-impersonator",
                    "namespace": CLUSTER_NS,
                    "labels": KARMADA_SYSTEM_LABEL,
                },
                "data": {"token": imp["token"]},
            },
        )
        labels = dict(member.labels)
        spec: dict[str, Any] = {
            "syncMode": "Push",
            "apiEndpoint": member.server,
            "secretRef": {"namespace": CLUSTER_NS, "name": member.name},
            "impersonatorSecretRef": {"namespace": CLUSTER_NS, "name": f"{member.name}-impersonator"},
        }
        if labels.get("provider"):
            spec["provider"] = labels["provider"]
        if labels.get("region"):
            spec["region"] = labels["region"]
        if labels.get("zone"):
            spec["zones"] = [labels["zone"]]
        kube.apply(
            k_api,
            {
                "apiVersion": CLUSTER_API,
                "kind": "Cluster",
                "metadata": {"name": member.name, "labels": labels},
                "spec": spec,
            },
        )

    def set_resource_models(self, name: str, models: list[dict[str, Any]]) -> None:
        """Replace a Cluster's ``spec.resourceModels`` and wait until its status is graded by them."""
        api = self.api.api_client()
        cluster = {"apiVersion": CLUSTER_API, "kind": "Cluster", "metadata": {"name": name}}
        kube.patch(api, cluster, {"spec": {"resourceModels": models}})

        def graded() -> bool:
            obj = kube.get(api, CLUSTER_API, "Cluster", name) or {}
            summary = (obj.get("status") or {}).get("resourceSummary") or {}
            return len(summary.get("allocatableModelings") or []) == len(models)

        kube.wait_for(graded, timeout=120, interval=1.0, what=f"Cluster {name} graded by the new models")

    # ---------------------------------------------------------------- private
    def _say(self, msg: str) -> None:
        if self.verbose:
            print(f"[peer {time.monotonic() - self._t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

    def _spawn(
        self, name: str, binary: Path, args: list[str], ready: Callable[[], bool], timeout: float
    ) -> None:
        assert self.rig is not None
        popen = self.rig.spawn(NAME, name, binary, args)
        self.api.pids[name] = popen.pid
        self.rig.save_state()
        deadline = time.monotonic() + timeout
        while not ready():
            if popen.poll() is not None:
                log = self.rig.process_log(NAME, name)
                tail = log.read_text(errors="replace").splitlines()[-15:]
                raise RigError(
                    f"{name} exited with code {popen.returncode}; last log lines ({log}):\n    "
                    + "\n    ".join(tail)
                )
            if time.monotonic() > deadline:
                log = self.rig.process_log(NAME, name)
                raise RigError(f"{name} did not become ready within {timeout:.0f}s; see {log}")
            time.sleep(0.25)
        self._say(f"{name} ready")

    def _component_ports(self, name: str) -> tuple[int, int]:
        metrics, health = free_port(), free_port()
        self.ports[f"{name}-metrics"], self.ports[f"{name}-health"] = metrics, health
        return metrics, health

    def _start_webhook(self, ca_crt: Path, ca_key: Path, timeout: float) -> None:
        assert self.binaries is not None
        cert_dir = self.workdir / "webhook-certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        certs.make_leaf(cert_dir, "tls", ca_cert=ca_crt, ca_key=ca_key)
        port = self.ports["karmada-webhook"] = free_port()
        metrics, health = self._component_ports("karmada-webhook")
        self._spawn(
            "karmada-webhook",
            self.binaries.webhook,
            [
                f"--kubeconfig={self.api.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                f"--metrics-bind-address=127.0.0.1:{metrics}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
                f"--feature-gates={FEATURE_GATES}",
                "--allow-no-execute-taint-policy=true",
            ],
            lambda: _http_ready(f"https://127.0.0.1:{port}/readyz", ca_crt),
            timeout,
        )

    def _webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['karmada-webhook']}"

    def _install_crds(self, ca_crt: Path, timeout: float) -> None:
        """The module's CRDs as its kustomization lists them, with its conversion-webhook patches."""
        assert self.binaries is not None
        root = self.binaries.crds
        kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
        patches: dict[str, dict[str, Any]] = {}
        for patch in kustomization.get("patches") or []:
            doc = yaml.safe_load((root / patch["path"]).read_text())
            patches[doc["metadata"]["name"]] = doc["spec"]
        api = self.api.api_client()
        names = []
        for resource in kustomization["resources"]:
            for doc in kube.load_manifests(root / resource):
                extra = patches.get(doc["metadata"]["name"])
                if extra is not None:
                    conversion = json.loads(
                        json.dumps(extra["conversion"])
                        .replace("https://{{name}}.{{namespace}}.svc:443", self._webhook_url())
                        .replace("{{caBundle}}", _b64(ca_crt.read_bytes()))
                    )
                    doc["spec"]["conversion"] = conversion
                kube.apply(api, doc, field_manager="flotilla-peer")
                names.append(doc["metadata"]["name"])
        kube.wait_for(
            lambda: all(_established(api, n) for n in names), timeout=timeout, what="Karmada CRDs Established"
        )
        self._say(f"{len(names)} Karmada CRDs installed")

    def _register_webhooks(self, ca_crt: Path) -> None:
        assert self.binaries is not None
        text = (
            (self.binaries.deploy / "webhook-configuration.yaml")
            .read_text()
            .replace("https://karmada-webhook.karmada-system.svc:443", self._webhook_url())
            .replace("{{caBundle}}", _b64(ca_crt.read_bytes()))
        )
        api = self.api.api_client()
        for doc in yaml.safe_load_all(text):
            if doc:
                kube.apply(api, doc, field_manager="flotilla-peer")

    def _start_aggregated_apiserver(self, ca_crt: Path, ca_key: Path, timeout: float) -> None:
        assert self.binaries is not None and self.rig is not None
        d = self.workdir / "aggregated-apiserver"
        d.mkdir(parents=True, exist_ok=True)
        service_dns = f"{AGGREGATED_SERVICE}.{SYSTEM_NS}.svc"
        leaf = certs.make_leaf(d, "serving", ca_cert=ca_crt, ca_key=ca_key, dns=("localhost", service_dns))
        port = self.ports[AGGREGATED_SERVICE] = free_port()
        kubeconfig = str(self.api.kubeconfig)
        self._spawn(
            "karmada-aggregated-apiserver",
            self.binaries.aggregated_apiserver,
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--etcd-servers={self.rig.etcd_urls[NAME]}",
                "--etcd-prefix=/karmada-aggregated/registry",
                f"--tls-cert-file={leaf.cert}",
                f"--tls-private-key-file={leaf.key}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={d}",
                f"--feature-gates={FEATURE_GATES}",
            ],
            lambda: _http_ready(f"https://127.0.0.1:{port}/readyz", ca_crt),
            timeout,
        )
        api = self.api.api_client()
        # The aggregator resolves an ExternalName Service to <externalName>:<APIService port>.
        kube.apply(
            api,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": AGGREGATED_SERVICE, "namespace": SYSTEM_NS},
                "spec": {"type": "ExternalName", "externalName": "localhost"},
            },
        )
        kube.apply(
            api,
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1alpha1.cluster.karmada.io", "labels": {"app": AGGREGATED_SERVICE}},
                "spec": {
                    "caBundle": _b64(ca_crt.read_bytes()),
                    "group": "cluster.karmada.io",
                    "groupPriorityMinimum": 2000,
                    "service": {"name": AGGREGATED_SERVICE, "namespace": SYSTEM_NS, "port": port},
                    "version": "v1alpha1",
                    "versionPriority": 10,
                },
            },
        )

        def available() -> bool:
            svc = kube.get(api, "apiregistration.k8s.io/v1", "APIService", "v1alpha1.cluster.karmada.io")
            conds = ((svc or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Available" and c["status"] == "True" for c in conds)

        kube.wait_for(available, timeout=timeout, what="APIService v1alpha1.cluster.karmada.io Available")
        self._say("cluster.karmada.io served through the aggregation layer")

    def _qps_args(self, cluster: bool) -> list[str]:
        if self.client_qps is None:
            return []
        qps, burst = f"{self.client_qps:g}", f"{int(self.client_qps * 1.5)}"
        out = [f"--kube-api-qps={qps}", f"--kube-api-burst={burst}"]
        if cluster:
            out += [f"--cluster-api-qps={qps}", f"--cluster-api-burst={burst}"]
        return out

    def _start_controllers(self, timeout: float) -> None:
        assert self.binaries is not None
        kubeconfig = self.api.kubeconfig
        metrics, health = self._component_ports("karmada-controller-manager")
        self._spawn(
            "karmada-controller-manager",
            self.binaries.controller_manager,
            [
                f"--kubeconfig={kubeconfig}",
                "--cluster-status-update-frequency=10s",
                "--controllers=*,hpaScaleTargetMarker,deploymentReplicasSyncer",
                f"--feature-gates={FEATURE_GATES}",
                f"--metrics-bind-address=127.0.0.1:{metrics}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
                "--enable-no-execute-taint-eviction=true",
                *self._qps_args(cluster=True),
            ],
            lambda: _http_ready(f"http://127.0.0.1:{health}/healthz"),
            timeout,
        )
        metrics, health = self._component_ports("karmada-scheduler")
        self._spawn(
            "karmada-scheduler",
            self.binaries.scheduler,
            [
                f"--kubeconfig={kubeconfig}",
                f"--metrics-bind-address=127.0.0.1:{metrics}",
                f"--health-probe-bind-address=127.0.0.1:{health}",
                "--enable-scheduler-estimator=false",
                f"--feature-gates={FEATURE_GATES}",
                *self._qps_args(cluster=False),
            ],
            lambda: _http_ready(f"http://127.0.0.1:{health}/healthz"),
            timeout,
        )


def _established(api: Any, name: str) -> bool:
    crd = kube.get(api, "apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    conds = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conds)


def karmada_handle(rig_workdir: Path) -> ClusterHandle | None:
    """The running peer's karmada-apiserver (from its state.json), or None."""
    handles = load_handles(peer_workdir(rig_workdir))
    return handles[0] if handles else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flotilla.rig.peer", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--workdir", type=Path, default=Path(".rig"), help="the rig's workdir (default .rig)")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    rig_dir = args.workdir.resolve()
    peer_dir = peer_workdir(rig_dir)
    if args.command == "down":
        n = down_from_state(peer_dir)
        print(f"stopped {n} Karmada peer processes" if n else f"no Karmada peer running under {peer_dir}")
        return 0
    if args.command == "status":
        handle = karmada_handle(rig_dir)
        if handle is None:
            print(f"no Karmada peer running under {peer_dir}")
            return 1
        peer = KarmadaPeer(workdir=peer_dir, members={}, verbose=False)
        members = json.loads((peer_dir / "peer.json").read_text())["members"]
        print(f"karmada-apiserver {handle.server} ready={handle.ready()} kubeconfig={handle.kubeconfig}")
        peer.rig = Rig(fleet=Fleet(hub=HubSpec(name=NAME)), workdir=peer_dir, hub=handle)
        for name in members:
            print(f"  Cluster {name}: Ready={peer.cluster_ready(name)}")
        return 0
    if karmada_handle(rig_dir) is not None:
        print(
            f"a Karmada peer is already running under {peer_dir}; run 'make peer-down' first", file=sys.stderr
        )
        return 1
    members = {h.name: h for h in load_handles(rig_dir) if h.role == "member"}
    if not members:
        print(
            f"no rig running under {rig_dir}: start one with 'flotilla dev up' (or 'make peer')",
            file=sys.stderr,
        )
        return 1
    from flotilla.cli import default_fleet_path
    from flotilla.rig.demo import thirdparty_dir
    from flotilla.rig.fleet import load_fleet

    # The kinds the rig's hub serves (the default fleet's), so the examples apply to both.
    extra = [thirdparty_dir() / f for f in load_fleet(default_fleet_path()).hub.third_party_crds]
    try:
        peer = KarmadaPeer(workdir=peer_dir, members=members, extra_crds=extra).up(timeout=args.timeout)
    except RigError as exc:
        print(f"flotilla: {exc}", file=sys.stderr)
        return 1
    print(f"Karmada peer running: export KUBECONFIG={peer.api.kubeconfig}")
    print("stop it with: make peer-down (or python -m flotilla.rig.peer down)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
