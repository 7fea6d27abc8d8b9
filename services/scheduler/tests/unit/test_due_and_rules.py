"""Missed-run policies and status rules, as pure decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from hopcast_scheduler.domain.due import MissedRunPolicy, plan_due
from hopcast_scheduler.domain.recurrence import Recurrence
from hopcast_scheduler.domain.rules import ScheduleStatus, status_after_outcome
from hopcast_scheduler.entrypoints.cli import app

HOURLY = Recurrence.parse("UTC", [f"{h:02d}:00" for h in range(0, 24, 3)], list(range(7)))  # 8 a day
T0 = datetime(2027, 5, 5, 9, 0, tzinfo=UTC)


def test_an_on_time_run_fires_and_nothing_is_missed() -> None:
    plan = plan_due(HOURLY, T0, T0 + timedelta(minutes=9), MissedRunPolicy.SKIP)
    assert plan.fire == [T0] and plan.missed == 0
    assert plan.next_run_at == T0 + timedelta(hours=3)


@pytest.mark.parametrize(
    ("policy", "fire"),
    [
        (MissedRunPolicy.SKIP, []),
        (MissedRunPolicy.ONCE, [T0 + timedelta(hours=9)]),
        (MissedRunPolicy.ALL, [T0 + timedelta(hours=h) for h in (3, 6, 9)]),
    ],
)
def test_late_runs_follow_the_policy(policy: MissedRunPolicy, fire: list[datetime]) -> None:
    now = T0 + timedelta(hours=9, minutes=30)  # 09:00, 12:00, 15:00, 18:00 all > 10 min late
    plan = plan_due(HOURLY, T0, now, policy)
    assert plan.missed == 4
    assert plan.fire == fire
    assert plan.next_run_at == T0 + timedelta(hours=12)


def test_once_does_not_add_a_catch_up_when_an_on_time_run_fires() -> None:
    now = T0 + timedelta(hours=3, minutes=5)  # 09:00 missed, 12:00 on time
    plan = plan_due(HOURLY, T0, now, MissedRunPolicy.ONCE)
    assert plan.fire == [T0 + timedelta(hours=3)] and plan.missed == 1


def test_exactly_ten_minutes_late_is_still_on_time() -> None:
    plan = plan_due(HOURLY, T0, T0 + timedelta(minutes=10), MissedRunPolicy.SKIP)
    assert plan.fire == [T0] and plan.missed == 0


def test_no_material_exhausts_and_five_errors_in_a_row_stop_a_schedule() -> None:
    assert status_after_outcome(ScheduleStatus.ACTIVE, 0, "NO_MATERIAL") == (ScheduleStatus.EXHAUSTED, 0)
    status, streak = ScheduleStatus.ACTIVE, 0
    for _ in range(4):
        status, streak = status_after_outcome(status, streak, "PUBLISH_FAILED")
    assert (status, streak) == (ScheduleStatus.ACTIVE, 4)
    assert status_after_outcome(status, streak, "PUBLISHED") == (ScheduleStatus.ACTIVE, 0)
    assert status_after_outcome(status, streak, "INSUFFICIENT_CREDITS") == (ScheduleStatus.ERROR, 5)
    # A paused schedule stays paused whatever its runs do.
    assert status_after_outcome(ScheduleStatus.PAUSED, 4, "PUBLISH_FAILED") == (ScheduleStatus.PAUSED, 5)


def test_preview_prints_the_design_example() -> None:
    result = CliRunner().invoke(
        app,
        [
            "preview",
            "--timezone", "America/New_York",
            "--times", "02:30",
            "--days", "0,1,2,3,4,5,6",
            "--after", "2027-03-13T12:00:00Z",
            "--count", "3",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "2027-03-14T07:00:00Z",
        "2027-03-15T06:30:00Z",
        "2027-03-16T06:30:00Z",
    ]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--timezone", "Nowhere/Land"], "unknown IANA time zone"),
        (["--times", "25:00"], "HH:MM"),
        (["--times", "9:30"], "HH:MM with two digits"),
        (["--days", "7"], "0-6"),
        (["--after", "yesterday"], "RFC 3339"),
    ],
)
def test_preview_refuses_bad_input_clearly(args: list[str], complaint: str) -> None:
    base = {"--timezone": "UTC", "--times": "09:00", "--days": "1", "--after": "2027-01-01T00:00:00Z"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = CliRunner().invoke(app, ["preview", *[x for kv in base.items() for x in kv]])
    assert result.exit_code == 2
    assert complaint in result.output
