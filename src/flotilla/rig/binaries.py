"""Where the rig's control-plane binaries live, and building them when they are missing.

The versions are pinned in ``tools/rig-bin/versions.env``; ``tools/rig-bin/build.sh`` builds them
from their Go modules into ``~/.cache/flotilla-rig/<component>-<version>/`` (override with
``FLOTILLA_RIG_CACHE``). A warm cache is reused as it is. Optional components (the Kubeflow
training operator) are built only when a fleet asks for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CORE_COMPONENTS = ("etcd", "kubernetes", "kwok")


class BinaryError(RuntimeError):
    """A binary the rig needs is missing and could not be built."""


def repo_root() -> Path:
    """The checkout this module runs from (``FLOTILLA_REPO`` overrides)."""
    env = os.environ.get("FLOTILLA_REPO")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tools" / "rig-bin" / "versions.env").exists():
            return parent
    raise BinaryError(
        "cannot find the Flotilla checkout (tools/rig-bin/versions.env); set FLOTILLA_REPO to its path"
    )


def cache_dir() -> Path:
    return Path(os.environ.get("FLOTILLA_RIG_CACHE", Path.home() / ".cache" / "flotilla-rig"))


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (repo_root() / "tools" / "rig-bin" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwok_stages: Path
    training_operator: Path
    k8s_version: str

    def missing(self, components: tuple[str, ...] = CORE_COMPONENTS) -> list[Path]:
        """Every binary of ``components`` that is not an executable file."""
        paths = _component_paths(self)
        return [p for c in components for p in paths[c] if not os.access(p, os.X_OK)]


def locate() -> Binaries:
    v = versions()
    c = cache_dir()
    k8s = c / f"kubernetes-{v['K8S_VERSION']}"
    kwok = c / f"kwok-{v['KWOK_VERSION']}"
    return Binaries(
        etcd=c / f"etcd-{v['ETCD_VERSION']}" / "etcd",
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        kwok=kwok / "kwok",
        kwok_stages=kwok / "stages",
        training_operator=c / f"training-operator-{v['TRAINING_OPERATOR_VERSION']}" / "training-operator",
        k8s_version=v["K8S_VERSION"],
    )


def helm_path() -> Path:
    return cache_dir() / f"helm-{versions()['HELM_VERSION']}" / "helm"


def _component_paths(found: Binaries) -> dict[str, list[Path]]:
    return {
        "etcd": [found.etcd],
        "kubernetes": [
            found.kube_apiserver,
            found.kube_controller_manager,
            found.kube_scheduler,
            found.kubectl,
        ],
        "kwok": [found.kwok],
        "training-operator": [found.training_operator],
    }


def ensure(build: bool = True, components: tuple[str, ...] = CORE_COMPONENTS) -> Binaries:
    """Return the binaries, building missing ones with ``build.sh`` (progress goes to stderr).

    ``components`` limits what must be present (``("kwok",)`` when the clusters come from kind) and
    names the optional ones wanted (``"training-operator"``)."""
    found = locate()
    paths = _component_paths(found)
    if not found.missing(components):
        return found
    if not build:
        names = ", ".join(str(p) for p in found.missing(components))
        raise BinaryError(f"missing rig binaries: {names}; run tools/rig-bin/build.sh to build them")
    script = repo_root() / "tools" / "rig-bin" / "build.sh"
    print(
        "flotilla: building the control-plane binaries from their Go modules "
        "(one-time; a cold build takes about 8-15 minutes on 2 cores)...",
        file=sys.stderr,
        flush=True,
    )
    todo = [c for c in components if any(not os.access(p, os.X_OK) for p in paths[c])]
    result = subprocess.run(["bash", str(script), *todo], check=False)
    if result.returncode != 0:
        raise BinaryError(f"{script} failed with exit code {result.returncode}; see its output above")
    found = locate()
    if found.missing(components):
        raise BinaryError(f"build finished but binaries are still missing: {found.missing(components)}")
    return found


@dataclass(frozen=True)
class KarmadaBinaries:
    """Karmada's control-plane commands and the manifests that ship in its module (``tools/rig-bin/build.sh
    karmada`` copies ``charts/karmada/_crds`` and ``artifacts/deploy`` beside the binaries)."""

    root: Path
    version: str

    @property
    def scheduler(self) -> Path:
        return self.root / "karmada-scheduler"

    @property
    def controller_manager(self) -> Path:
        return self.root / "karmada-controller-manager"

    @property
    def aggregated_apiserver(self) -> Path:
        return self.root / "karmada-aggregated-apiserver"

    @property
    def webhook(self) -> Path:
        return self.root / "karmada-webhook"

    @property
    def crds(self) -> Path:
        return self.root / "crds"

    @property
    def deploy(self) -> Path:
        return self.root / "deploy"

    def missing(self) -> list[Path]:
        binaries = [self.scheduler, self.controller_manager, self.aggregated_apiserver, self.webhook]
        out = [p for p in binaries if not os.access(p, os.X_OK)]
        out += [
            p
            for p in (self.crds / "kustomization.yaml", self.deploy / "webhook-configuration.yaml")
            if not p.exists()
        ]
        return out


def locate_karmada() -> KarmadaBinaries:
    version = versions()["KARMADA_VERSION"]
    return KarmadaBinaries(root=cache_dir() / f"karmada-{version}", version=version)


def ensure_karmada(build: bool = True) -> KarmadaBinaries:
    """Karmada's binaries, built with ``build.sh karmada`` when missing (progress goes to stderr)."""
    found = locate_karmada()
    if not found.missing():
        return found
    script = repo_root() / "tools" / "rig-bin" / "build.sh"
    if not build:
        names = ", ".join(str(p) for p in found.missing())
        raise BinaryError(f"missing Karmada binaries: {names}; run 'bash {script} karmada' (or 'make peer')")
    print(
        f"flotilla: building Karmada {found.version} from its Go module (one-time; a cold build takes "
        "about 10-20 minutes on 2 cores)...",
        file=sys.stderr,
        flush=True,
    )
    result = subprocess.run(["bash", str(script), "karmada"], check=False)
    if result.returncode != 0:
        raise BinaryError(f"{script} karmada failed with exit code {result.returncode}; see its output above")
    if found.missing():
        raise BinaryError(f"build finished but Karmada files are still missing: {found.missing()}")
    return found
