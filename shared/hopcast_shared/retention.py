"""Retention: what was soft-deleted longer ago than the retention is deleted for good, in each
service's database, by the service's periodic purge job and by `hopcast purge`.

Each service owns the SQL of its purge (a `Purge`: connection and retention in days in,
rows deleted per table out) and registers it in the entry-point group `hopcast.purge`;
this module adds the kernel's own housekeeping (the inbox, dead letters and parked outbox
rows) and runs both in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import asyncpg

from hopcast_shared.db import Conn
from hopcast_shared.inbox import purge_inbox
from hopcast_shared.settings import KafkaSettings

if TYPE_CHECKING:
    from hopcast_shared.service import BackgroundTask, ServiceRuntime

log = logging.getLogger(__name__)

Purge = Callable[[Conn, int], Awaitable[Mapping[str, int]]]
ENTRY_POINT_GROUP = "hopcast.purge"
DAY_MS = 24 * 3600 * 1000
# One purge at a time per database: replicas' periodic jobs and `hopcast purge` take turns.
_LOCK_KEY = "hopcast.purge"


def inbox_retention_days(kafka: KafkaSettings) -> int:
    """How long handled message ids are kept: as long as Kafka can deliver a message again (its
    topic retention, or the DLQ's, from which `hopcast dlq replay` sends it back), whatever the
    purge's retention. The inbox holds event ids and types, nothing of an organization's data."""
    return -(-max(kafka.retention_ms, kafka.dlq_retention_ms) // DAY_MS)


def _deleted(status: str) -> int:
    return int(status.split()[-1])


async def purge_database(conn: Conn, purge: Purge, *, older_than_days: int, inbox_days: int) -> dict[str, int] | None:
    """In the caller's transaction: the service's purge, then the inbox's old ids and the outbox
    rows parked longer than the retention (their payloads carry an organization's data).
    None when another purge of this database holds the lock (nothing was done)."""
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", _LOCK_KEY):
        return None
    # The organizations this purge removes (every service keeps the projection): what the
    # kernel's tables hold of them (handled ids, dead letters) goes with them.
    gone: list[uuid.UUID] = []
    if await conn.fetchval("SELECT to_regclass('organizations')") is not None:
        gone = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM organizations WHERE deleted_at < now() - make_interval(days => $1)", older_than_days
            )
        ]
    counts = dict(await purge(conn, older_than_days))
    counts["inbox"] = await purge_inbox(conn, older_than_days=inbox_days, organizations=gone)
    # Dead letters hold an organization's data (the original event): kept as long as the DLQ
    # topic keeps its copy (inbox_days covers it), then gone with it.
    counts["dead_letters"] = _deleted(
        await conn.execute(
            """DELETE FROM dead_letters
               WHERE dead_lettered_at < now() - make_interval(days => $1) OR organization_id = ANY($2::uuid[])""",
            inbox_days,
            gone,
        )
    )
    counts["outbox_parked"] = _deleted(
        await conn.execute(
            "DELETE FROM outbox WHERE parked_at < now() - make_interval(days => $1)",
            older_than_days,
        )
    )
    return counts


async def purge_url(
    url: str, purge: Purge, *, older_than_days: int, inbox_days: int, dry_run: bool = False
) -> dict[str, int] | None:
    """Purge the database at `url` in one transaction; with `dry_run` it is rolled back, so the
    counts say what would be deleted and nothing is."""
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        try:
            counts = await purge_database(conn, purge, older_than_days=older_than_days, inbox_days=inbox_days)
        except BaseException:
            await tx.rollback()
            raise
        if dry_run:
            await tx.rollback()
        else:
            await tx.commit()
        return counts
    finally:
        await conn.close()


def purge_loop(purge: Purge, interval_s: float) -> BackgroundTask:
    """The periodic purge job of a service (a background task of its ServiceDefinition), at
    the service's retention (`<SERVICE>_RETENTION_DAYS`)."""

    async def purge_loop(runtime: ServiceRuntime) -> None:
        inbox_days = inbox_retention_days(runtime.kafka)
        while True:
            async with runtime.db.transaction() as conn:
                counts = await purge_database(
                    conn, purge, older_than_days=runtime.settings.retention_days, inbox_days=inbox_days
                )
            if counts and any(counts.values()):
                log.info("purged %s", counts)
            await asyncio.sleep(interval_s)

    return purge_loop
