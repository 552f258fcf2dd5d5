"""Where the repository and the shared/ folder (third-party CRDs) are."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package is installed from (editable install), else the working directory."""
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "pyproject.toml").exists() else Path.cwd()


def shared_dir() -> Path:
    """``$FLOTILLA_SHARED_DIR``, else ``shared/`` next to the repository root (``<root>/../shared``)."""
    override = os.environ.get("FLOTILLA_SHARED_DIR")
    return Path(override) if override else repo_root().parent / "shared"


def thirdparty_crds_dir() -> Path:
    """The upstream Karmada, Volcano, scheduler-plugins and workload CRDs."""
    return shared_dir() / "thirdparty-crds"
