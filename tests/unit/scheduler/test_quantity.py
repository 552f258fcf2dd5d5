from fractions import Fraction

import pytest

from flotilla.scheduler.quantity import (
    add,
    fits,
    insufficient,
    parse_quantity,
    parse_resource_list,
    sub,
    to_canonical,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("1.5", Fraction(3, 2)),
        ("1Ki", Fraction(1024)),
        ("1.5Gi", Fraction(3 * 2**29)),
        ("2M", Fraction(2_000_000)),
        ("1e3", Fraction(1000)),
        ("1E-3", Fraction(1, 1000)),
        ("100u", Fraction(1, 10_000)),
        ("5n", Fraction(5, 10**9)),
        (".5", Fraction(1, 2)),
        ("-1", Fraction(-1)),
        (8, Fraction(8)),
        (0.1, Fraction(1, 10)),
    ],
)
def test_parse_quantity(raw: str | int | float, expected: Fraction) -> None:
    assert parse_quantity(raw) == expected


@pytest.mark.parametrize("raw", ["", "abc", "1.2.3", "1Kb", "Gi", float("nan"), True])
def test_parse_quantity_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("cpu", "500m", 500),
        ("cpu", "2", 2000),
        ("cpu", "1.5m", 2),
        ("cpu", 0.25, 250),
        ("memory", "1Gi", 2**30),
        ("memory", "1.5", 2),
        ("ephemeral-storage", "10G", 10**10),
        ("hugepages-2Mi", "4Mi", 4 * 2**20),
        ("nvidia.com/gpu", "2", 2),
        ("nvidia.com/gpu", 0.5, 1),
        ("pods", "110", 110),
        ("flotilla.dev/gpu-milli", "250", 250),
    ],
)
def test_to_canonical(name: str, raw: str | float, expected: int) -> None:
    assert to_canonical(name, raw) == expected


def test_resource_list_helpers() -> None:
    a = parse_resource_list({"cpu": "1", "memory": "1Gi"})
    b = {"cpu": 500, "nvidia.com/gpu": 1}
    assert add(a, b) == {"cpu": 1500, "memory": 2**30, "nvidia.com/gpu": 1}
    assert sub(a, b) == {"cpu": 500, "memory": 2**30, "nvidia.com/gpu": -1}
    assert fits({"cpu": 1000}, a)
    assert not fits({"cpu": 1001}, a)
    assert not fits({"example.com/fpga": 1}, a)
    assert fits({"example.com/fpga": 0}, a)
    assert insufficient({"cpu": 2000, "memory": 1, "x": 1}, a) == ["cpu", "x"]
    assert parse_resource_list(None) == {}
