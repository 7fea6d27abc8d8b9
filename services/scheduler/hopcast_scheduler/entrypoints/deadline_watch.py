"""The deadline watch: a background task of the service that tells the services of open runs
past their deadline (service_layer/runs.py, `watch_deadlines`), each batch in a transaction
of its own, and keeps the gauge of runs open past their deadline (once, twice) that the
alert "runs open past their deadline" reads. Any number of replicas may watch at once: the
claim skips what another holds, and a run is told once (adapters/runs.py)."""

from __future__ import annotations

import asyncio

from hopcast_scheduler import metrics
from hopcast_scheduler.adapters.runs import open_past_deadline
from hopcast_scheduler.config import SchedulerSettings
from hopcast_scheduler.service_layer.handlers import SchedulerDeps
from hopcast_scheduler.service_layer.runs import watch_deadlines
from hopcast_shared.service import BackgroundTask, ServiceRuntime


async def watch_once(deps: SchedulerDeps, runtime: ServiceRuntime, batch_size: int) -> int:
    """One claim transaction; returns the runs told."""
    async with runtime.db.transaction() as conn:
        return await watch_deadlines(deps, conn, runtime.kafka, now=deps.clock(), limit=batch_size)


def deadline_watch(deps: SchedulerDeps, settings: SchedulerSettings) -> BackgroundTask:
    async def deadline_watch(runtime: ServiceRuntime) -> None:
        while True:
            told = await watch_once(deps, runtime, settings.deadline_batch_size)
            if told >= settings.deadline_batch_size:
                continue
            async with runtime.db.pool.acquire() as conn:
                past, twice = await open_past_deadline(conn, deps.clock(), deps.run_deadline)
            metrics.RUNS_OPEN_PAST_DEADLINE.labels("1").set(past)
            metrics.RUNS_OPEN_PAST_DEADLINE.labels("2").set(twice)
            await asyncio.sleep(settings.deadline_check_interval_s)

    return deadline_watch
