"""Test modules are imported by basename (rootdir-relative sys.path, no packages): two files with
the same name in different folders break collection of the whole suite, so names stay unique."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_module_basenames_are_unique() -> None:
    names = Counter(
        p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and "__pycache__" not in p.parts
    )
    assert [n for n, c in names.items() if c > 1] == []
