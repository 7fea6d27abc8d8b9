"""`hopcast publisher ...`: rotate the stored tokens (the DESIGN's `hopcast tokens rotate`),
purge what was soft-deleted long ago, soft-delete or restore a post, show a pending post."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer

from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.adapters.retention import purge as purge_older_than
from hopcast_shared.settings import ServiceSettings

app = typer.Typer(no_args_is_help=True, help="The publisher's tools.")
T = TypeVar("T")


@app.callback()
def publisher() -> None:
    """The publisher's tools."""


def _run(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    settings = ServiceSettings.for_service("publisher")

    async def main() -> T:
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


@app.command("rotate-tokens")
def rotate_tokens_command(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="accounts per transaction")] = 500,
) -> None:
    """Re-encrypt every stored token under the newest key of TOKEN_KEYS (the design's `hopcast tokens rotate`).

    Safe while the service runs: each row is replaced only if unchanged since it was read."""
    # Imported here: `hopcast` loads every part's commands at start, and only this one needs the keys.
    from hopcast_publisher.adapters.credentials import AccountTokens
    from hopcast_publisher.service_layer.token_rotation import rotate_tokens
    from hopcast_shared.crypto import load_keyring

    tokens = AccountTokens(load_keyring())
    report = _run(lambda conn: rotate_tokens(conn, tokens, batch_size=batch_size))
    typer.echo(
        f"{report.checked} account(s) checked, {report.rotated} rotated, "
        f"{report.changed_meanwhile} changed meanwhile (already current), {report.undecryptable} undecryptable"
    )
    raise typer.Exit(1 if report.undecryptable else 0)


@app.command()
def purge(
    days: Annotated[
        int | None, typer.Option(min=0, help="retention in days (default PUBLISHER_RETENTION_DAYS)")
    ] = None,
) -> None:
    """Delete for good what was soft-deleted (posts, accounts) or finished (pending posts) before the retention."""
    retention = days if days is not None else ServiceSettings.for_service("publisher").retention_days

    async def work(conn: asyncpg.Connection) -> dict[str, int]:
        async with conn.transaction():
            return await purge_older_than(conn, retention)

    typer.echo(json.dumps(_run(work)))


def _uuid(value: str, hint: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter("expected a UUID", param_hint=hint) from None


def _set_post_deleted(post_id: str, organization: str, deleted: bool) -> None:
    """The post is looked up within the organization only: an operator's slip of another
    organization's id changes nothing (upstream's PostDeleted/PostRestored are the usual way)."""
    pid, org = _uuid(post_id, "POST_ID"), _uuid(organization, "--organization")
    if not _run(lambda conn: PostRepository().set_post_deleted(conn, pid, org, deleted)):
        typer.echo(f"no post {pid} in organization {org}", err=True)
        raise typer.Exit(1)
    typer.echo(f"post {pid} {'deleted' if deleted else 'restored'}")


Organization = Annotated[str, typer.Option("--organization", help="the organization id the post belongs to")]


@app.command("delete-post")
def delete_post(post_id: str, organization: Organization) -> None:
    """Soft-delete an organization's post: out of the dashboards and queries, purged after the retention.

    Only the publisher's copy: content keeps counting it until upstream sends PostDeleted."""
    _set_post_deleted(post_id, organization, True)


@app.command("restore-post")
def restore_post(post_id: str, organization: Organization) -> None:
    """Restore an organization's soft-deleted post."""
    _set_post_deleted(post_id, organization, False)
