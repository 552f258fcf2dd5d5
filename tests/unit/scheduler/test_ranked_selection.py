"""The fleet-scale selection reads clusters off a view's raw node-score ranking in exactly the
order the stable sort of the normalised totals gives: best total first, then name, including
distinct raw scores that normalise to the same total (rounding)."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st

from flotilla.scheduler.core import _Selection
from flotilla.scheduler.runtime import NormalizedScores, _normalized

# Few distinct values, so runs of equal scores are common, plus values that only differ in
# their last bits, which normalise to the same total beside a far-away minimum.
SCORES = st.sampled_from([0.0, 1.0, 1.0 + 2**-52, 1.0 + 2**-51, 2.5, 100.0, -1e16, -3e16, 7.25])


def reference(scores: dict[str, float]) -> list[str]:
    totals = {name: 0.0 + value for name, value in _normalized(dict(sorted(scores.items()))).items()}
    return sorted(totals, key=totals.__getitem__, reverse=True)


def selection(scores: dict[str, float]) -> _Selection:
    ranking: list[tuple[float, str]] = []
    for name, value in scores.items():  # inserted one by one, as the view does
        bisect.insort(ranking, (-value, name))
    totals = NormalizedScores(scores, -ranking[-1][0], -ranking[0][0])
    return _Selection.ranked(ranking, totals.value, scores)


@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3), SCORES, min_size=1, max_size=40))
def test_lazy_ranking_is_the_stable_sort_of_the_totals(scores: dict[str, float]) -> None:
    expected = reference(scores)
    assert list(selection(scores)) == expected
    # Read piecemeal (first items, slices, negative indexes), as the placement code reads it.
    sel = selection(scores)
    assert sel[0] == expected[0]
    assert sel[:2] == expected[:2]
    assert sel[-1] == expected[-1]
    assert len(sel) == len(expected)
    assert all(name in sel for name in scores) and "zz" not in sel
    assert list(sel) == expected


def test_raw_scores_that_normalise_equal_are_put_in_name_order() -> None:
    scores = {"a": 1.0, "b": 1.0 + 2**-52, "d": 5.0, "c": -3e16}  # b ranks first by raw score
    assert _normalized(scores)["a"] == _normalized(scores)["b"]
    assert list(selection(scores)) == ["d", "a", "b", "c"] == reference(scores)


def test_normalised_scores_read_lazily_equal_normalize() -> None:
    scores = {"a": 3.0, "b": -1.5, "c": 0.1}
    lazy = NormalizedScores(scores, -1.5, 3.0)
    assert dict(lazy) == _normalized(scores)
    assert dict(NormalizedScores({"a": 2.0, "b": 2.0}, 2.0, 2.0)) == {"a": 100.0, "b": 100.0}
