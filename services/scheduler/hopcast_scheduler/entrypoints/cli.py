"""`hopcast scheduler preview`: the next run times of a recurrence, one UTC RFC 3339 a line."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from hopcast_scheduler.domain.recurrence import Recurrence, format_utc, next_runs
from hopcast_scheduler.domain.rules import MAX_RUNS_PER_DAY
from hopcast_shared.contract.fields import HHMM_PATTERN

app = typer.Typer(no_args_is_help=True, help="The scheduler's tools.")


@app.callback()
def scheduler() -> None:
    """The scheduler's tools."""


@app.command()
def preview(
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. America/New_York")],
    times: Annotated[str, typer.Option(help="local times HH:MM[,HH:MM...]")],
    days: Annotated[str, typer.Option(help="days of week 0-6, 0 = Sunday, e.g. 0,1,2,3,4,5,6")],
    after: Annotated[str, typer.Option(help="RFC 3339 instant, e.g. 2027-03-13T12:00:00Z")],
    count: Annotated[int, typer.Option(min=1, max=10_000, help="how many run times")] = 10,
) -> None:
    """Print the next COUNT run times after AFTER, one UTC RFC 3339 timestamp a line."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"unknown IANA time zone {timezone!r}", param_hint="--timezone") from None
    time_list = [t.strip() for t in times.split(",") if t.strip()]
    # The contract's own rule for a schedule's times (two digits each: 09:30, not 9:30).
    if not all(re.fullmatch(HHMM_PATTERN, t) for t in time_list):
        raise typer.BadParameter("times are HH:MM with two digits each, 00:00 to 23:59", param_hint="--times")
    if not time_list or len(set(time_list)) > MAX_RUNS_PER_DAY:
        raise typer.BadParameter(f"1 to {MAX_RUNS_PER_DAY} times a day", param_hint="--times")
    try:
        day_list = [int(d) for d in days.split(",") if d.strip()]
    except ValueError:
        raise typer.BadParameter("days are integers 0-6", param_hint="--days") from None
    if not day_list or any(d < 0 or d > 6 for d in day_list):
        raise typer.BadParameter("days are integers 0-6 (0 = Sunday)", param_hint="--days")
    try:
        start = datetime.fromisoformat(after.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter("expected RFC 3339, e.g. 2027-03-13T12:00:00Z", param_hint="--after") from None
    if start.tzinfo is None:
        raise typer.BadParameter("needs a UTC offset or Z", param_hint="--after")
    for instant in next_runs(Recurrence.parse(timezone, time_list, day_list), start, count):
        typer.echo(format_utc(instant))
