"""Which runs a claimed schedule fires now, by its missed-run policy.

A run more than ten minutes late is missed (DESIGN.md "Schedules"): every missed run is
counted; SKIP fires none of them, ONCE fires one (the latest) unless an on-time run fires
anyway, ALL fires the latest three at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from hopcast_scheduler.domain.recurrence import Recurrence, next_run, next_runs

MISSED_AFTER = timedelta(minutes=10)
ALL_CAP = 3
# Enough to count a year of ten-a-day runs; beyond that the count is a lower bound.
_ENUMERATION_CAP = 5_000


class MissedRunPolicy(StrEnum):
    SKIP = "SKIP"
    ONCE = "ONCE"
    ALL = "ALL"


@dataclass(frozen=True)
class DuePlan:
    fire: list[datetime]
    missed: int
    next_run_at: datetime | None


def plan_due(rule: Recurrence, next_run_at: datetime, now: datetime, policy: MissedRunPolicy) -> DuePlan:
    """The runs to fire for a schedule whose `next_run_at` has come, and its next run after now."""
    due = [next_run_at]
    if next_run_at < now:
        due += next_runs(rule, next_run_at, _ENUMERATION_CAP, until=now)
    on_time = [t for t in due if now - t <= MISSED_AFTER]
    late = [t for t in due if now - t > MISSED_AFTER]
    if policy is MissedRunPolicy.SKIP or not late:
        catch_up: list[datetime] = []
    elif policy is MissedRunPolicy.ONCE:
        catch_up = [] if on_time else late[-1:]
    else:
        catch_up = late[-ALL_CAP:]
    return DuePlan(fire=catch_up + on_time, missed=len(late), next_run_at=next_run(rule, now))
