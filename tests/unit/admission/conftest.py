"""Fixtures for the admission webhook tests."""

from __future__ import annotations

import pytest
from admission_support import FakeSecrets, ManualClock


@pytest.fixture
def secrets() -> FakeSecrets:
    return FakeSecrets()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
