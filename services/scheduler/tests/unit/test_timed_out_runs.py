"""A timed-out run counts toward the five failed runs in a row that pause a schedule."""

from __future__ import annotations

from hopcast_scheduler.domain.rules import ScheduleStatus, status_after_outcome


def test_five_timed_out_runs_in_a_row_pause_the_schedule_and_a_published_one_resets_the_count() -> None:
    status, streak = ScheduleStatus.ACTIVE, 0
    for _ in range(4):
        status, streak = status_after_outcome(status, streak, "TIMED_OUT")
    assert (status, streak) == (ScheduleStatus.ACTIVE, 4)
    assert status_after_outcome(status, streak, "PUBLISHED") == (ScheduleStatus.ACTIVE, 0)
    assert status_after_outcome(status, streak, "TIMED_OUT") == (ScheduleStatus.ERROR, 5)
