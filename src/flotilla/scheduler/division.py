"""Replica division: exact sums by the largest-remainder (Hamilton) method.

Rounding rule: cluster ``i`` first gets ``floor(total * w_i / W)``; the units still missing go,
one each, to the clusters with the largest remainders ``total * w_i mod W``; ties go to the
larger weight, then to the cluster name in ascending order. So the result always sums to
``total`` and is fully deterministic. With capacity caps (node-level available replicas), a
cluster is never given more than its cap: clusters that would exceed it are clamped and the
excess is divided again among the others by the same rule, until everything is placed or no
capacity is left (then :func:`divide` returns None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["aggregate", "divide"]


def _hamilton(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    weight_sum = sum(weights.values())
    if total <= 0 or weight_sum <= 0:
        return dict.fromkeys(weights, 0)
    out = {name: total * w // weight_sum for name, w in weights.items()}
    missing = total - sum(out.values())
    order = sorted(weights, key=lambda n: (-(total * weights[n] % weight_sum), -weights[n], n))
    for name in order[:missing]:
        out[name] += 1
    return out


def divide(
    total: int, weights: Mapping[str, int], caps: Mapping[str, int] | None = None
) -> dict[str, int] | None:
    """Split ``total`` by integer ``weights`` (see module docstring); None if caps cannot hold it."""
    weights = {n: w for n, w in weights.items() if w > 0}
    if caps is None:
        return _hamilton(total, weights)
    if sum(min(caps.get(n, 0), total) for n in weights) < total:
        return None
    result = dict.fromkeys(weights, 0)
    open_ = {n: w for n, w in weights.items() if caps.get(n, 0) > 0}
    remaining = total
    while remaining > 0:
        if not open_:
            return None
        for name, n in _hamilton(remaining, open_).items():
            room = caps.get(name, 0) - result[name]
            if n >= room:
                n = room
                del open_[name]
            result[name] += n
            remaining -= n
    return result


def aggregate(total: int, ranked: Sequence[str], available: Mapping[str, int]) -> dict[str, int] | None:
    """Place ``total`` replicas on the fewest clusters.

    If some cluster can hold everything alone, the best-ranked such cluster gets all of it.
    Otherwise clusters are taken by available replicas (descending, then rank) and filled in
    that order. Returns None when the clusters together cannot hold ``total``.
    """
    for name in ranked:
        if available.get(name, 0) >= total:
            return {name: total}
    rank = {n: i for i, n in enumerate(ranked)}
    out: dict[str, int] = {}
    remaining = total
    for name in sorted(ranked, key=lambda n: (-available.get(n, 0), rank[n])):
        if remaining <= 0:
            break
        take = min(available.get(name, 0), remaining)
        if take > 0:
            out[name] = take
            remaining -= take
    return out if remaining <= 0 else None
