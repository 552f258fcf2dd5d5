"""StateMatrix: the fleet's summaries as array rows give the sums and maxima of a direct pass."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotilla.scheduler import statematrix
from flotilla.scheduler.snapshot import ClusterSummary, NodeInfo
from flotilla.scheduler.statematrix import StateMatrix

GiB = 1 << 30


def node(name: str, cpu: int, gpus: int) -> NodeInfo:
    return NodeInfo(
        name,
        {"cpu": 64_000, "memory": 256 * GiB, "nvidia.com/gpu": 8},
        {"cpu": cpu},
        gpu_free=(1000,) * gpus + (0,) * (8 - gpus),
    )


def entry(node: NodeInfo) -> tuple[int, float]:
    """A shape taking 2 whole GPUs; the score favours busy nodes (any function of the state)."""
    return node.whole_free // 2, float(node.used.get("cpu", 0)) / 1000 - node.whole_free / 8


def direct(summary: ClusterSummary) -> tuple[int, float]:
    pods = [(entry(summary.nodes[rid]), n) for rid, n in summary.counts.items()]
    available = sum(cap * n for (cap, _), n in pods)
    scores = [score for (cap, score), _ in pods if cap > 0]
    return available, max(scores) if scores else float("-inf")


states = st.tuples(st.integers(0, 8), st.integers(0, 8))  # (cpu used in cores, free GPUs)
fleet = st.lists(st.lists(states, min_size=1, max_size=12), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(fleet, min_size=1, max_size=5), st.booleans())
def test_rooms_equal_a_direct_pass_as_summaries_change(
    rounds: list[list[list[tuple[int, int]]]], small: bool
) -> None:
    """Clusters appear, grow, shrink and change between passes (rows rewritten and widened);
    with ``small`` the slot table starts over almost every pass."""
    matrix = StateMatrix()
    ids = itertools.count()
    with pytest.MonkeyPatch.context() as patch:
        if small:
            patch.setattr(statematrix, "SLOT_LIMIT", 4)
        for clusters in rounds:
            names, summaries = [], []
            for c, nodes in enumerate(clusters):
                names.append(f"c{c}")
                summaries.append(
                    ClusterSummary.of(node(f"n{next(ids)}", cpu * 1000, gpus) for cpu, gpus in nodes)
                )
            available, best = matrix.rooms(names, summaries, "two-gpus", entry)
            assert list(zip(available, best, strict=True)) == [direct(s) for s in summaries]


def test_a_shape_is_evaluated_once_per_state_until_its_columns_are_dropped() -> None:
    matrix = StateMatrix()
    summary = ClusterSummary.of([node("a", 0, 8), node("b", 4000, 2)])
    assert matrix.rooms(["c"], [summary], "shape", entry) == ([5], [direct(summary)[1]])
    again = matrix.rooms(["c"], [summary], "shape", lambda n: (1, 7.0))
    assert again == ([5], [direct(summary)[1]])  # the states' columns are kept
    matrix.drop_columns()  # (a learned score moved)
    assert matrix.rooms(["c"], [summary], "shape", lambda n: (1, 7.0)) == ([2], [7.0])


def test_a_cluster_named_twice_in_one_pass_is_refused() -> None:
    one = ClusterSummary.of([node("a", 0, 8)])
    with pytest.raises(ValueError, match="twice"):
        StateMatrix().rooms(["c", "c"], [one, one], "shape", entry)
