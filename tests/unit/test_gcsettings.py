"""FLOTILLA_GC_THRESHOLD: the operator's garbage-collector thresholds."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flotilla.gcsettings import DEFAULT, ENV, apply_threshold, threshold_from_env


@pytest.fixture(autouse=True)
def _restore_threshold() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_default_is_set_when_unset() -> None:
    gc.set_threshold(700, 10, 10)
    assert apply_threshold({}) == DEFAULT == gc.get_threshold()


def test_python_keeps_the_interpreters_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    assert threshold_from_env({ENV: "python"}) is None
    assert apply_threshold({ENV: " Python "}) == (700, 10, 10)


def test_three_integers_are_set() -> None:
    assert apply_threshold({ENV: "20000, 5,0"}) == (20000, 5, 0) == gc.get_threshold()


@pytest.mark.parametrize("raw", ["50000", "1,2,3,4", "a,b,c", "-1,10,10", "0,10,10", "1.5,10,10"])
def test_a_bad_value_names_the_variable(raw: str) -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match=ENV):
        apply_threshold({ENV: raw})
    assert gc.get_threshold() == before
