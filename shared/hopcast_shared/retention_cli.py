"""`hopcast purge [--older-than-days N] [--dry-run]`: delete for good, in every service's database,
what was soft-deleted more than the retention ago.

The services are the installed parts that register a purge in the entry-point group
`hopcast.purge`; each one's database is `<SERVICE>_DATABASE_URL` and its default retention
`<SERVICE>_RETENTION_DAYS` (30 days).
"""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import entry_points
from typing import Annotated

import typer

from hopcast_shared.retention import ENTRY_POINT_GROUP, inbox_retention_days, purge_url
from hopcast_shared.settings import KafkaSettings, ServiceSettings, load

app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    help="Delete for good, in every service's database, what was soft-deleted more than the retention ago.",
)


@app.callback(invoke_without_command=True)
def purge(
    older_than_days: Annotated[
        int | None,
        typer.Option(min=0, help="retention in days (default: each service's <SERVICE>_RETENTION_DAYS, 30)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be deleted, delete nothing")] = False,
) -> None:
    """Purge every service's database in turn, one transaction each; print what was deleted.

    Exit 1 if a database could not be purged (the others still are)."""
    services = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if not services:
        raise typer.BadParameter("no installed service registers a purge")
    inbox_days = inbox_retention_days(load(KafkaSettings))
    failed = False
    for service in services:
        settings = ServiceSettings.for_service(service.name)
        days = older_than_days if older_than_days is not None else settings.retention_days
        try:
            counts = asyncio.run(
                purge_url(
                    settings.database_url, service.load(), older_than_days=days, inbox_days=inbox_days, dry_run=dry_run
                )
            )
        except Exception as exc:  # one unreachable database must not keep the others from being purged
            typer.echo(f"{service.name}: failed: {type(exc).__name__}: {exc}", err=True)
            failed = True
            continue
        if counts is None:
            typer.echo(f"{service.name}: skipped: another purge of this database is running", err=True)
            failed = True
            continue
        verb = "would delete" if dry_run else "deleted"
        typer.echo(f"{service.name}: {verb} (older than {days} days) {json.dumps(counts, sort_keys=True)}")
    raise typer.Exit(1 if failed else 0)
