"""Wiring: the scheduler's handlers, consumed topics, tick loop, purge job and HTTP routes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hopcast_scheduler import metrics
from hopcast_scheduler.adapters.repository import due_backlog, purge
from hopcast_scheduler.config import SchedulerSettings
from hopcast_scheduler.entrypoints.http import routes
from hopcast_scheduler.handlers import HANDLERS, claim_and_emit, now_utc
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import load
from hopcast_shared.topics import ANALYTICS, UPSTREAM

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


async def claim_once(runtime: ServiceRuntime, batch_size: int) -> int:
    """One claim transaction; returns the runs fired."""
    async with runtime.db.transaction() as conn:
        return await claim_and_emit(conn, runtime.kafka, now=now_utc(), limit=batch_size)


async def tick_loop(runtime: ServiceRuntime) -> None:
    """Every tick, claim due schedules until none is left (a backlog drains at full speed)."""
    settings = load(SchedulerSettings)
    while True:
        fired = await claim_once(runtime, settings.claim_batch_size)
        if fired >= settings.claim_batch_size:
            continue
        async with runtime.db.pool.acquire() as conn:
            metrics.DUE_BACKLOG.set(await due_backlog(conn, now_utc()))
        await asyncio.sleep(settings.tick_interval_s)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="scheduler",
        consumes=[UPSTREAM, ANALYTICS],
        handlers=HANDLERS,
        migrations_dir=MIGRATIONS,
        background=[tick_loop, purge_loop(purge, load(SchedulerSettings).purge_interval_s)],
        http_routes=routes,
    )
