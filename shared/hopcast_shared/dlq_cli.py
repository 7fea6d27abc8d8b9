"""`hopcast dlq list SERVICE` and `hopcast dlq replay SERVICE`: inspect and replay dead letters."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hopcast_shared.dlq import DeadLetter, read_dead_letters, replay_dead_letters
from hopcast_shared.settings import SERVICES, KafkaSettings, load

app = typer.Typer(no_args_is_help=True, help="Inspect and replay dead-lettered events.")

ServiceArg = Annotated[str, typer.Argument(help=f"one of {', '.join(SERVICES)} (or any consumer group)")]


def _select(letters: list[DeadLetter], event_id: str | None, event_type: str | None) -> list[DeadLetter]:
    return [
        letter
        for letter in letters
        if (event_id is None or letter.event_id == event_id) and (event_type is None or letter.event_type == event_type)
    ]


@app.command("list")
def list_(
    service: ServiceArg,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON dead letter a line")] = False,
    event_type: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
) -> None:
    """List the dead letters of a service's consumer group."""
    kafka = load(KafkaSettings)
    letters = _select(asyncio.run(read_dead_letters(kafka, service)), None, event_type)
    if as_json:
        for letter in letters:
            typer.echo(letter.model_dump_json())
        return
    table = Table(title=f"{service}.dlq: {len(letters)} dead letter(s)")
    for column in ("when", "event type", "event id", "kind", "attempts", "error", "from"):
        table.add_column(column)
    for letter in letters:
        table.add_row(
            letter.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S"),
            letter.event_type or "-",
            letter.event_id or "-",
            letter.error_kind,
            str(letter.attempts),
            letter.error[:120],
            f"{letter.source.topic}[{letter.source.partition}]@{letter.source.offset}",
        )
    Console().print(table)


@app.command()
def replay(
    service: ServiceArg,
    event_id: Annotated[str | None, typer.Option("--event-id", help="only this event")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be replayed")] = False,
) -> None:
    """Send dead-lettered events back to their source topics (after a fix). Safe to repeat:
    an event already handled is recognised by every consumer's inbox."""
    kafka = load(KafkaSettings)
    letters = _select(asyncio.run(read_dead_letters(kafka, service)), event_id, event_type)
    if dry_run:
        typer.echo(f"would replay {len(letters)} dead letter(s) of {service}")
        return
    count = asyncio.run(replay_dead_letters(kafka, letters))
    typer.echo(f"replayed {count} dead letter(s) of {service}")
