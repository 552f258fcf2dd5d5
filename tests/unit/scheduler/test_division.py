import pytest

from flotilla.scheduler.division import aggregate, divide


@pytest.mark.parametrize(
    ("total", "weights", "caps", "expected"),
    [
        (10, {"a": 1, "b": 1}, None, {"a": 5, "b": 5}),
        (7, {"a": 1, "b": 1}, None, {"a": 4, "b": 3}),  # tie on remainder and weight -> name
        (7, {"b": 1, "a": 1}, None, {"a": 4, "b": 3}),
        (10, {"a": 1, "b": 2, "c": 3}, None, {"a": 2, "b": 3, "c": 5}),
        (1, {"a": 1, "b": 3}, None, {"a": 0, "b": 1}),
        (5, {"a": 0, "b": 1}, None, {"b": 5}),
        (10, {"a": 1, "b": 1}, {"a": 2, "b": 100}, {"a": 2, "b": 8}),
        (10, {"a": 3, "b": 1, "c": 1}, {"a": 4, "b": 3, "c": 3}, {"a": 4, "b": 3, "c": 3}),
        (11, {"a": 1, "b": 1}, {"a": 5, "b": 5}, None),
        (0, {"a": 1}, None, {"a": 0}),
    ],
)
def test_divide(
    total: int, weights: dict[str, int], caps: dict[str, int] | None, expected: dict[str, int] | None
) -> None:
    result = divide(total, weights, caps)
    assert result == expected
    if result is not None:
        assert sum(result.values()) == total
        for name, n in result.items():
            assert caps is None or n <= caps[name]


@pytest.mark.parametrize(
    ("total", "ranked", "available", "expected"),
    [
        (3, ["a", "b"], {"a": 5, "b": 10}, {"a": 3}),  # best-ranked cluster that holds all
        (8, ["a", "b"], {"a": 5, "b": 10}, {"b": 8}),
        (12, ["a", "b", "c"], {"a": 5, "b": 10, "c": 1}, {"b": 10, "a": 2}),
        (20, ["a", "b"], {"a": 5, "b": 10}, None),
    ],
)
def test_aggregate(
    total: int, ranked: list[str], available: dict[str, int], expected: dict[str, int] | None
) -> None:
    assert aggregate(total, ranked, available) == expected
