"""What makes a schedule valid, and how run outcomes move its status."""

from __future__ import annotations

from enum import StrEnum

MAX_RUNS_PER_DAY = 10
ERROR_STREAK_LIMIT = 5


class ScheduleStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    EXHAUSTED = "EXHAUSTED"
    ERROR = "ERROR"


# Outcomes that count toward the five-in-a-row that pauses a schedule with ERROR.
# A run that timed out (TIMED_OUT) failed as surely as one whose platforms refused it.
ERROR_OUTCOMES = frozenset({"PUBLISH_FAILED", "INSUFFICIENT_CREDITS", "TIMED_OUT"})
# Outcomes that show the schedule works: they end an error streak.
SUCCESS_OUTCOMES = frozenset({"PUBLISHED", "PARTIALLY_PUBLISHED"})


def status_after_outcome(status: ScheduleStatus, streak: int, outcome: str) -> tuple[ScheduleStatus, int]:
    """(new status, new consecutive-error count) after a run ended with `outcome`."""
    if outcome in ERROR_OUTCOMES:
        streak += 1
    elif outcome in SUCCESS_OUTCOMES:
        streak = 0
    if status is not ScheduleStatus.ACTIVE:
        return status, streak  # a paused schedule stays paused whatever its last run did
    if outcome == "NO_MATERIAL":
        return ScheduleStatus.EXHAUSTED, streak
    if streak >= ERROR_STREAK_LIMIT:
        return ScheduleStatus.ERROR, streak
    return status, streak


def schedule_problems(times: list[str], days_of_week: list[int]) -> list[str]:
    """Reasons a schedule cannot run, beyond what the contract's types check."""
    problems = []
    if len(set(times)) > MAX_RUNS_PER_DAY:
        problems.append(f"at most {MAX_RUNS_PER_DAY} runs a day (times has {len(set(times))})")
    if not days_of_week:
        problems.append("days_of_week is empty")
    if not times:
        problems.append("times is empty")
    return problems
