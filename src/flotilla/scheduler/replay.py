"""Replay a decision: load a snapshot JSON and a workload JSON, schedule, return the outcome.

Usable from the command line: ``python -m flotilla.scheduler.replay SNAPSHOT.json WORKLOAD.json``
prints the decision (targets, pod assignments and explanation, or the diagnosis) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flotilla.scheduler.core import ScheduleOutcome, Scheduler
from flotilla.scheduler.snapshot import Snapshot
from flotilla.scheduler.workload import Workload

__all__ = ["main", "replay"]


def replay(
    snapshot_path: str | Path, workload_path: str | Path, scheduler: Scheduler | None = None
) -> ScheduleOutcome:
    """Schedule the saved workload against the saved snapshot (default profile unless given)."""
    scheduler = scheduler if scheduler is not None else Scheduler()
    return scheduler.schedule(Snapshot.load(snapshot_path), Workload.load(workload_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot")
    parser.add_argument("workload")
    args = parser.parse_args(argv)
    outcome = replay(args.snapshot, args.workload)
    json.dump(outcome.to_dict(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
