"""A member's health as a small state machine: probe results and a clock in, state and transitions out.

No I/O and no threads: :class:`~flotilla.inventory.member.MemberConnection` feeds it one
:class:`ProbeResult` per probe (``/readyz``, plus its nodes' readiness) and publishes what it
returns. The machine has hysteresis, so a flapping member does not thrash:

* ``Unknown`` (nothing observed yet, e.g. just after the operator started): the first success
  makes it ``Ready`` at once; ``failure_threshold`` consecutive failures make it ``NotReady``.
* ``Ready`` -> ``NotReady`` after ``failure_threshold`` consecutive failures;
* ``NotReady`` -> ``Ready`` after ``success_threshold`` consecutive successes.

A failure or success that does not complete a streak changes nothing but the counters, so a
member whose probes alternate never transitions. While ``NotReady`` the reason and message
follow the latest failure (``Unreachable`` may become ``APIServerNotReady``) without a
transition; ``since`` moves only on a transition.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Health", "HealthStatus", "HealthTracker", "ProbeResult", "Reason"]


class Reason:
    """``reason`` values of the MemberCluster ``Ready`` condition (CamelCase, one word)."""

    READY = "Ready"
    CONNECTING = "Connecting"
    SYNCING = "Syncing"
    KUBECONFIG_INVALID = "KubeconfigInvalid"
    UNREACHABLE = "Unreachable"
    """No answer from the member's API server (connection refused, timeout, TLS failure)."""
    API_SERVER_NOT_READY = "APIServerNotReady"
    """The API server answers, but ``/readyz`` is not ``ok`` (or an HTTP error)."""
    NO_READY_NODES = "NoReadyNodes"
    """The API server is ready, but the member has nodes and none of them is Ready."""
    UNAUTHORIZED = "Unauthorized"
    UNHEALTHY = "Unhealthy"
    """Any other failure of a probe."""
    STOPPED = "Stopped"


class Health(enum.StrEnum):
    UNKNOWN = "Unknown"
    READY = "Ready"
    NOT_READY = "NotReady"


@dataclass(frozen=True)
class ProbeResult:
    """One probe: ``ok``, or a failure with a reason (a :class:`Reason`) and a message."""

    ok: bool
    reason: str = Reason.READY
    message: str = ""

    @classmethod
    def success(cls) -> ProbeResult:
        return cls(True)

    @classmethod
    def failure(cls, reason: str, message: str) -> ProbeResult:
        return cls(False, reason, message)


@dataclass(frozen=True)
class HealthStatus:
    """The machine's state after an observation."""

    state: Health
    reason: str
    """The latest failure's reason while not Ready (``Ready`` when Ready)."""
    message: str
    since: float
    """Clock time of the last transition (or of the machine's creation)."""
    transitioned: bool = False
    """Whether the observation that produced this status changed ``state``."""


class HealthTracker:
    """See the module docs. Not thread-safe: the caller serialises :meth:`observe`."""

    def __init__(
        self,
        failure_threshold: int = 3,
        success_threshold: int = 2,
        *,
        clock: Callable[[], float] = time.time,
        initial: Health = Health.UNKNOWN,
        reason: str = Reason.CONNECTING,
        message: str = "connecting to the member API server",
    ) -> None:
        self.failure_threshold = max(1, failure_threshold)
        self.success_threshold = max(1, success_threshold)
        self.clock = clock
        self.state = initial
        self.reason = Reason.READY if initial is Health.READY else reason
        self.message = "" if initial is Health.READY else message
        self.since = clock()
        self.failures = 0
        """Consecutive failures (0 after any success)."""
        self.successes = 0
        """Consecutive successes (0 after any failure)."""
        self.transitions = 0

    def status(self, transitioned: bool = False) -> HealthStatus:
        return HealthStatus(self.state, self.reason, self.message, self.since, transitioned)

    def observe(self, result: ProbeResult) -> HealthStatus:
        """Feed one probe result; returns the state and whether this result changed it."""
        if result.ok:
            self.failures = 0
            self.successes += 1
            enough = self.state is Health.UNKNOWN or self.successes >= self.success_threshold
            if self.state is not Health.READY and enough:
                return self._move(Health.READY, Reason.READY, "")
            return self.status()
        self.successes = 0
        self.failures += 1
        if self.state is not Health.READY:
            # Not Ready (or not known yet): say why, from the latest failure.
            self.reason, self.message = result.reason, result.message
        if self.state is not Health.NOT_READY and self.failures >= self.failure_threshold:
            return self._move(Health.NOT_READY, result.reason, result.message)
        return self.status()

    def _move(self, state: Health, reason: str, message: str) -> HealthStatus:
        self.state, self.reason, self.message = state, reason, message
        self.since = self.clock()
        self.transitions += 1
        return self.status(transitioned=True)
