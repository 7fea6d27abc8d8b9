"""The tick loop: a background task of the service that fires due schedules.

Every tick it claims due schedules until none is left (a backlog drains at full speed), each
batch in one transaction of its own (`claim_once`), the service layer's `claim_and_emit`
deciding what fires. Any number of replicas may tick at once: the claim skips what another
holds (adapters/repository.py, CLAIM_DUE).
"""

from __future__ import annotations

import asyncio

from hopcast_scheduler import metrics
from hopcast_scheduler.adapters.repository import due_backlog
from hopcast_scheduler.config import SchedulerSettings
from hopcast_scheduler.service_layer.handlers import SchedulerDeps, claim_and_emit
from hopcast_shared.service import BackgroundTask, ServiceRuntime


async def claim_once(deps: SchedulerDeps, runtime: ServiceRuntime, batch_size: int) -> int:
    """One claim transaction; returns the runs fired."""
    async with runtime.db.transaction() as conn:
        return await claim_and_emit(deps, conn, runtime.kafka, now=deps.clock(), limit=batch_size)


def tick_loop(deps: SchedulerDeps, settings: SchedulerSettings) -> BackgroundTask:
    async def tick_loop(runtime: ServiceRuntime) -> None:
        while True:
            fired = await claim_once(deps, runtime, settings.claim_batch_size)
            if fired >= settings.claim_batch_size:
                continue
            async with runtime.db.pool.acquire() as conn:
                metrics.DUE_BACKLOG.set(await due_backlog(conn, deps.clock()))
            await asyncio.sleep(settings.tick_interval_s)

    return tick_loop
