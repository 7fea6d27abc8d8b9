"""`hopcast content ...`: purge what was soft-deleted long ago."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import asyncpg
import typer

from hopcast_content.adapters.purge import purge as purge_content
from hopcast_content.config import ContentSettings
from hopcast_shared.settings import ServiceSettings, load

app = typer.Typer(no_args_is_help=True, help="The content service's tools.")


@app.callback()
def content() -> None:
    """The content service's tools."""


@app.command()
def purge(
    days: Annotated[int | None, typer.Option(min=0, help="retention in days (default CONTENT_RETENTION_DAYS)")] = None,
) -> None:
    """Delete for good what was soft-deleted (organizations, brands, materials) before the retention,
    and drafts, runs and embeddings older than both the retention and the duplicate window."""
    settings = ServiceSettings.for_service("content")
    retention = days if days is not None else settings.retention_days
    window = load(ContentSettings).dedup_window_days

    async def main() -> dict[str, int]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                return await purge_content(conn, retention, window_days=window)
        finally:
            await conn.close()

    typer.echo(json.dumps(asyncio.run(main())))
