"""Run times against a brute-force reference that walks every minute of local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hopcast_scheduler.domain.recurrence import (
    Recurrence,
    contract_weekday,
    format_utc,
    local_to_utc,
    next_runs,
)

ZONES = [
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # half-hour DST
    "Australia/Sydney",
    "America/Sao_Paulo",  # DST abolished in 2019
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/St_Johns",
    "UTC",
    "Africa/Casablanca",  # DST suspended during Ramadan
    "Asia/Tehran",
    "America/Santiago",
]


def reference_runs(rule: Recurrence, after: datetime, count: int) -> list[datetime]:
    """Walk UTC minute by minute; a run happens at the first instant whose local wall time is at
    or past a scheduled time on a matching day, once per (local day, time)."""
    zone = ZoneInfo(rule.timezone)
    fired: set[tuple[date, time]] = set()
    runs: list[datetime] = []
    # Start a day early so (day, time) pairs already passed before `after` are known as fired.
    t = (after - timedelta(days=1)).replace(second=0, microsecond=0)
    end = after + timedelta(days=30)
    last_local: datetime | None = None
    while t <= end and len(runs) < count:
        local = t.astimezone(zone).replace(tzinfo=None)
        for at in rule.times:
            day = local.date()
            if contract_weekday(day) not in rule.days_of_week or (day, at) in fired:
                continue
            wall = datetime.combine(day, at)
            if local >= wall and (last_local is None or last_local < wall or last_local.date() != day):
                fired.add((day, at))
                if t > after and t not in runs:  # two times in one gap: one run
                    runs.append(t)
        last_local = local
        t += timedelta(minutes=1)
    return sorted(set(runs))[:count]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    times=st.lists(
        st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
        min_size=1,
        max_size=3,
        unique=True,
    ),
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 1)),
)
def test_matches_the_minute_by_minute_reference(zone: str, times: list[str], days: set[int], start: datetime) -> None:
    rule = Recurrence.parse(zone, times, sorted(days))
    after = start.replace(second=0, microsecond=0, tzinfo=UTC)
    assert next_runs(rule, after, 4) == reference_runs(rule, after, 4)


TRANSITIONS = [
    ("America/New_York", datetime(2027, 3, 13, 12, tzinfo=UTC), ["02:30"]),
    ("America/New_York", datetime(2027, 11, 6, 12, tzinfo=UTC), ["01:30"]),
    ("Europe/Berlin", datetime(2028, 3, 25, 12, tzinfo=UTC), ["02:00", "02:59"]),
    ("Europe/Berlin", datetime(2028, 10, 28, 12, tzinfo=UTC), ["02:30"]),
    ("Australia/Lord_Howe", datetime(2027, 10, 2, 0, tzinfo=UTC), ["02:00", "02:15"]),
    ("Australia/Lord_Howe", datetime(2027, 4, 3, 0, tzinfo=UTC), ["01:45"]),
    ("Pacific/Chatham", datetime(2029, 9, 29, 0, tzinfo=UTC), ["02:45", "03:00"]),
]


@pytest.mark.parametrize(("zone", "after", "times"), TRANSITIONS)
def test_dst_transitions_match_the_reference(zone: str, after: datetime, times: list[str]) -> None:
    rule = Recurrence.parse(zone, times, list(range(7)))
    assert next_runs(rule, after, 6) == reference_runs(rule, after, 6)


def test_the_design_example_spring_forward_gap_runs_at_its_end() -> None:
    rule = Recurrence.parse("America/New_York", ["02:30"], list(range(7)))
    runs = [format_utc(t) for t in next_runs(rule, datetime(2027, 3, 13, 12, tzinfo=UTC), 3)]
    assert runs == ["2027-03-14T07:00:00Z", "2027-03-15T06:30:00Z", "2027-03-16T06:30:00Z"]


def test_a_repeated_local_time_runs_once_at_its_first_occurrence() -> None:
    rule = Recurrence.parse("America/New_York", ["01:30"], list(range(7)))
    first = next_runs(rule, datetime(2027, 11, 6, 12, tzinfo=UTC), 1)[0]
    assert format_utc(first) == "2027-11-07T05:30:00Z"  # 01:30 EDT, not 01:30 EST
    assert format_utc(next_runs(rule, first, 1)[0]) == "2027-11-08T06:30:00Z"


def test_half_hour_dst_gap_in_lord_howe() -> None:
    # 2027-10-03 02:00 -> 02:30 (+10:30 -> +11): 02:15 does not exist and runs at 02:30.
    instant = local_to_utc(date(2027, 10, 3), time(2, 15), ZoneInfo("Australia/Lord_Howe"))
    assert format_utc(instant) == "2027-10-02T15:30:00Z"


def test_days_of_week_start_on_sunday() -> None:
    rule = Recurrence.parse("UTC", ["09:00"], [0])  # Sundays only
    runs = next_runs(rule, datetime(2027, 1, 1, tzinfo=UTC), 2)  # a Friday
    assert [r.date().isoformat() for r in runs] == ["2027-01-03", "2027-01-10"]
    assert all(r.weekday() == 6 for r in runs)


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_runs(Recurrence.parse("UTC", ["09:00"], [1]), datetime(2027, 1, 1), 1)
