"""The operator's scheduling profile: the default plugins, with the settings it reads from the
environment (the Helm chart's ``operator.scheduler`` values).

* ``FLOTILLA_FRAGMENTATION_LEARN`` (default ``true``) - GPUFragmentation learns its target
  distribution from the workloads it sees (``false``: it keeps the documented prior);
* ``FLOTILLA_FRAGMENTATION_HALF_LIFE`` (default 5000) - observed pods after which an
  observation weighs half;
* ``FLOTILLA_FRAGMENTATION_PRIOR_WEIGHT`` (default 10) - the prior's weight, in pods, when
  learning starts;
* ``FLOTILLA_FRAGMENTATION_REQUANTIZE`` (default 0.05) - how far (total variation distance)
  the live histogram may move before scores switch to it;
* ``FLOTILLA_FRAGMENTATION_INTERVAL`` (default 1000) - workloads between two such checks (the
  first comes after 64).

See :class:`flotilla.scheduler.plugins.fragmentation.LearningSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flotilla.scheduler import Framework, Scheduler
from flotilla.scheduler.plugins import fragmentation
from flotilla.scheduler.plugins.fragmentation import LearningSettings

ENV_LEARN = "FLOTILLA_FRAGMENTATION_LEARN"
ENV_HALF_LIFE = "FLOTILLA_FRAGMENTATION_HALF_LIFE"
ENV_PRIOR_WEIGHT = "FLOTILLA_FRAGMENTATION_PRIOR_WEIGHT"
ENV_REQUANTIZE = "FLOTILLA_FRAGMENTATION_REQUANTIZE"
ENV_INTERVAL = "FLOTILLA_FRAGMENTATION_INTERVAL"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def learning_from_env(environ: Mapping[str, str] | None = None) -> LearningSettings:
    """The GPUFragmentation learning setting; a bad value raises ``ValueError`` naming the variable."""
    env = os.environ if environ is None else environ
    default = LearningSettings()

    def number(key: str, fallback: float) -> float:
        raw = (env.get(key) or "").strip()
        if not raw:
            return fallback
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{key}: not a number: {raw!r}") from None

    raw_learn = (env.get(ENV_LEARN) or "").strip().lower()
    if raw_learn and raw_learn not in _TRUE + _FALSE:
        raise ValueError(f"{ENV_LEARN}: expected true or false, got {raw_learn!r}")
    learn = default.learn if not raw_learn else raw_learn in _TRUE
    values = {
        ENV_HALF_LIFE: number(ENV_HALF_LIFE, default.half_life),
        ENV_PRIOR_WEIGHT: number(ENV_PRIOR_WEIGHT, default.prior_weight),
        ENV_REQUANTIZE: number(ENV_REQUANTIZE, default.requantize),
        ENV_INTERVAL: number(ENV_INTERVAL, default.interval),
    }
    if not float(values[ENV_INTERVAL]).is_integer():
        raise ValueError(f"{ENV_INTERVAL}: not a whole number of workloads: {values[ENV_INTERVAL]!r}")
    try:
        return LearningSettings(
            learn=learn,
            half_life=values[ENV_HALF_LIFE],
            prior_weight=values[ENV_PRIOR_WEIGHT],
            requantize=values[ENV_REQUANTIZE],
            interval=int(values[ENV_INTERVAL]),
        )
    except ValueError as exc:
        names = {
            "halfLife": ENV_HALF_LIFE,
            "priorWeight": ENV_PRIOR_WEIGHT,
            "requantize": ENV_REQUANTIZE,
            "interval": ENV_INTERVAL,
        }
        field = str(exc).split(" ", 1)[0]
        raise ValueError(f"{names.get(field, field)}: {exc}") from None


def default_scheduler(learning: LearningSettings | None = None) -> Scheduler:
    """The default profile (every in-tree plugin, default weights) with GPUFragmentation set up
    by ``learning`` (default: :class:`LearningSettings`' defaults)."""
    plugin = fragmentation.new(learning=learning)
    return Scheduler(Framework(instances={fragmentation.NAME: plugin}))
