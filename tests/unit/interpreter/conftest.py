"""Fixtures for the interpreter unit tests: realistic manifests and the registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flotilla.interpreter import InterpreterRegistry

MANIFESTS = Path(__file__).parent / "manifests"


def load_manifest(name: str) -> dict[str, Any]:
    """Load ``manifests/<name>.yaml``."""
    with (MANIFESTS / f"{name}.yaml").open() as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


@pytest.fixture
def manifest() -> Callable[[str], dict[str, Any]]:
    """``manifest("pytorchjob")`` -> a fresh copy of that manifest."""
    return load_manifest


@pytest.fixture(scope="session")
def registry() -> InterpreterRegistry:
    """A registry with the built-ins."""
    return InterpreterRegistry()


def merge_patch(obj: Any, patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386) and return the result; ``obj`` is not modified."""
    if not isinstance(patch, dict):
        return patch
    out = dict(obj) if isinstance(obj, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
