"""`hopcast dlq list|replay SERVICE` and `hopcast outbox list|retry SERVICE`: what a service
could not handle, and what Kafka refused to take from it.

Both read the service's own database (`<SERVICE>_DATABASE_URL`): every dead letter is kept
there whole, whatever its size (the message on `<service>.dlq` carries only a preview past the
topic's limit), and parked outbox rows live nowhere else.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer

from hopcast_shared.dlq import StoredDeadLetter, replay_stored, stored_dead_letters
from hopcast_shared.listing import print_json_lines, print_table
from hopcast_shared.settings import SERVICES, KafkaSettings, ServiceSettings, load

app = typer.Typer(no_args_is_help=True, help="Inspect and replay dead-lettered events.")
outbox_app = typer.Typer(no_args_is_help=True, help="Inspect and retry outbox rows Kafka refused (parked).")

T = TypeVar("T")


def _service(name: str) -> str:
    if name not in SERVICES:
        raise typer.BadParameter(f"expected one of {', '.join(SERVICES)}")
    return name


ServiceArg = Annotated[str, typer.Argument(help=f"one of {', '.join(SERVICES)}", callback=_service)]


def _with_database(service: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await asyncpg.connect(ServiceSettings.for_service(service).database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


@app.command("list")
def list_(
    service: ServiceArg,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON dead letter a line")] = False,
    event_type: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="only those never replayed")] = False,
) -> None:
    """List the dead letters of a service, whatever their size (from its database)."""
    letters = _with_database(
        service, lambda conn: stored_dead_letters(conn, event_type=event_type, pending_only=pending)
    )
    if as_json:
        print_json_lines(letter.summary() for letter in letters)
        return
    print_table(
        f"{service}: {len(letters)} dead letter(s)",
        ("when", "event type", "event id", "kind", "attempts", "error", "from", "size", "replays"),
        (
            (
                letter.dead_lettered_at.strftime("%Y-%m-%d %H:%M:%S"),
                letter.event_type or "-",
                letter.event_id or "-",
                letter.error_kind,
                str(letter.attempts),
                letter.error[:120],
                f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}",
                str(letter.value_size),
                str(letter.replays),
            )
            for letter in letters
        ),
    )


@app.command()
def replay(
    service: ServiceArg,
    event_id: Annotated[str | None, typer.Option("--event-id", help="only this event")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="only this event type")] = None,
    dead_letter_id: Annotated[uuid.UUID | None, typer.Option("--id", help="only this dead letter")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="only those never replayed")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be replayed")] = False,
) -> None:
    """Send dead-lettered events back to their source topics as they came (after a fix). Safe to
    repeat: an event already handled is recognised by every consumer's inbox."""
    kafka = load(KafkaSettings)

    async def work(conn: asyncpg.Connection) -> tuple[int, list[StoredDeadLetter]]:
        letters = await stored_dead_letters(
            conn, event_id=event_id, event_type=event_type, dead_letter_id=dead_letter_id, pending_only=pending
        )
        if dry_run:
            return 0, letters
        return await replay_stored(kafka, conn, letters), letters

    count, letters = _with_database(service, work)
    if dry_run:
        typer.echo(f"would replay {len(letters)} dead letter(s) of {service}")
        return
    typer.echo(f"replayed {count} dead letter(s) of {service}")


@outbox_app.command("list")
def outbox_list(
    service: ServiceArg,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON row a line")] = False,
) -> None:
    """List the outbox rows Kafka refused for good (parked): too large, not authorized, no topic."""

    async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            """
            SELECT id, event_id, event_type, topic, octet_length(payload) AS size, attempts, last_error,
                   created_at, parked_at
            FROM outbox WHERE parked_at IS NOT NULL ORDER BY id
            """
        )

    rows = _with_database(service, work)
    if as_json:
        print_json_lines({k: v if isinstance(v, int | str | None) else str(v) for k, v in row.items()} for row in rows)
        return
    print_table(
        f"{service}: {len(rows)} parked outbox row(s)",
        ("id", "event type", "topic", "size", "attempts", "parked", "error"),
        (
            (
                str(row["id"]),
                row["event_type"],
                row["topic"],
                str(row["size"]),
                str(row["attempts"]),
                row["parked_at"].strftime("%Y-%m-%d %H:%M:%S"),
                (row["last_error"] or "")[:120],
            )
            for row in rows
        ),
    )


@outbox_app.command("retry")
def outbox_retry(
    service: ServiceArg,
    row_id: Annotated[list[int] | None, typer.Option("--id", help="only these rows (repeatable)")] = None,
) -> None:
    """Give parked rows back to the relay (after the topic, the ACL or the size limit was fixed);
    one Kafka refuses again is parked again."""

    async def work(conn: asyncpg.Connection) -> str:
        return await conn.execute(
            "UPDATE outbox SET parked_at = NULL WHERE parked_at IS NOT NULL AND ($1::bigint[] IS NULL OR id = ANY($1))",
            row_id or None,
        )

    status = _with_database(service, work)
    typer.echo(f"retrying {int(status.split()[-1])} parked row(s) of {service}")
