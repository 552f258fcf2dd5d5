"""Fixtures shared by the controller tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from test_runtime import Fleet


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    """A hub and members a and b with the runtime wired to them (started by the test)."""
    f = Fleet()
    yield f
    if f.rt is not None:
        await f.rt.stop()
