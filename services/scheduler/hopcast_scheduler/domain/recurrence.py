"""When a schedule runs: local times on days of the week in an IANA zone, as UTC instants.

Rules (DESIGN.md "Schedules"): a local time that does not exist (spring forward) runs at
the end of the gap, the first valid local time after it; a local time that occurs twice
(fall back) runs once, at its first occurrence. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

# Python's weekday() is Monday=0; the contract's days_of_week is Sunday=0.
_CONTRACT_DAY = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 0}


@dataclass(frozen=True)
class Recurrence:
    timezone: str
    times: tuple[time, ...]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, timezone: str, times: Sequence[str], days_of_week: Sequence[int]) -> Recurrence:
        parsed = tuple(sorted({time.fromisoformat(t) for t in times}))
        return cls(timezone, parsed, frozenset(days_of_week))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def contract_weekday(day: date) -> int:
    """0 = Sunday ... 6 = Saturday, as in the contract."""
    return _CONTRACT_DAY[day.weekday()]


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant a local wall time on a day means, by the contract's DST rules."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant  # exists (fold=0 is the first occurrence when it is ambiguous)
    # In a gap: the offsets before and after the transition bracket it; find the
    # transition instant, which is where local time resumes (the end of the gap).
    before = wall.replace(tzinfo=zone, fold=0).utcoffset()
    after = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert before is not None and after is not None
    low = (wall - max(before, after)).replace(tzinfo=UTC)
    high = (wall - min(before, after)).replace(tzinfo=UTC)
    target = low.astimezone(zone).utcoffset()
    # Transitions fall on whole seconds; bisect to one second.
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).utcoffset() == target:
            low = mid
        else:
            high = mid
    return high


def _days_from(start: date) -> Iterator[date]:
    day = start
    while True:
        yield day
        day += timedelta(days=1)


def next_runs(rule: Recurrence, after: datetime, count: int, *, until: datetime | None = None) -> list[datetime]:
    """The next `count` run instants strictly after `after` (aware), in UTC, ascending;
    with `until`, only those at or before it."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    return list(_next_runs(rule, after.astimezone(UTC), count, until))


# A tick claims many schedules due at the same slots with the same rules: remember answers.
@lru_cache(maxsize=16_384)
def _next_runs(rule: Recurrence, after: datetime, count: int, until: datetime | None) -> tuple[datetime, ...]:
    if not rule.times or not rule.days_of_week:
        return ()
    zone = rule.zone
    after_utc = after
    # Start a day early: a local date can begin before `after` in UTC terms.
    start = after_utc.astimezone(zone).date() - timedelta(days=1)
    found: list[datetime] = []
    seen: set[datetime] = set()
    for day in _days_from(start):
        if contract_weekday(day) not in rule.days_of_week:
            continue
        # Two local times in one gap map to the same instant: it runs once.
        instants = sorted({local_to_utc(day, at, zone) for at in rule.times})
        for instant in instants:
            if instant > after_utc and instant not in seen and (until is None or instant <= until):
                seen.add(instant)
                found.append(instant)
        if len(found) >= count or (until is not None and instants and instants[0] > until):
            # Local dates only move forward, so a later day never gives an earlier instant.
            break
    return tuple(found[:count])


def next_run(rule: Recurrence, after: datetime) -> datetime | None:
    runs = next_runs(rule, after, 1)
    return runs[0] if runs else None


def format_utc(instant: datetime) -> str:
    """RFC 3339 in UTC with a Z: 2027-03-14T07:00:00Z."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
