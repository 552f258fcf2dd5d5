"""The operator's garbage-collector thresholds (``FLOTILLA_GC_THRESHOLD``).

The operator holds every member's node inventory, a large and long-lived heap, and each
scheduling decision allocates many short-lived containers (node checks, verdicts, the
explanation). At Python's default thresholds (a young collection every 700 container
allocations, ``(700, 10, 10)``), in the 1,000-decision queue of
``benchmarks/bench_scheduler.py`` at 1,000 clusters, the collector took about 18 % of the
scheduler's CPU: young collections about 7 %, and one full collection of the freshly loaded
inventory (100 ms; 400 ms at 5,000 clusters). Most of those containers are freed by reference
counting before a young collection would look at them, so collecting less often costs little
memory: the operator sets ``(50000, 20, 10)`` at start (docs/benchmarks.md has the figures).

``FLOTILLA_GC_THRESHOLD`` takes three comma-separated integers (``gc.set_threshold``), or
``python`` to keep the interpreter's own; a bad value raises ``ValueError`` naming the variable.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

ENV = "FLOTILLA_GC_THRESHOLD"
DEFAULT = (50_000, 20, 10)


def threshold_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """The thresholds ``FLOTILLA_GC_THRESHOLD`` asks for (:data:`DEFAULT` when unset); None for
    ``python`` (keep the interpreter's)."""
    env = os.environ if environ is None else environ
    raw = (env.get(ENV) or "").strip()
    if not raw:
        return DEFAULT
    if raw.lower() == "python":
        return None
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[0]) == 0:
        raise ValueError(
            f"{ENV}: expected three non-negative integers like 50000,20,10 (the first above 0) "
            f"or 'python', got {raw!r}"
        )
    return int(parts[0]), int(parts[1]), int(parts[2])


def apply_threshold(environ: Mapping[str, str] | None = None) -> tuple[int, int, int]:
    """Set the thresholds ``FLOTILLA_GC_THRESHOLD`` asks for; returns those in force."""
    threshold = threshold_from_env(environ)
    if threshold is not None:
        gc.set_threshold(*threshold)
    first, second, third = gc.get_threshold()
    return first, second, third
