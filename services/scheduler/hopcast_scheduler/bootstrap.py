"""Wiring: the scheduler's dependencies and handlers, consumed topics, tick loop, deadline watch,
purge job and HTTP routes."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

from hopcast_scheduler.adapters.repository import purge
from hopcast_scheduler.config import SchedulerSettings
from hopcast_scheduler.entrypoints.deadline_watch import deadline_watch
from hopcast_scheduler.entrypoints.http import routes
from hopcast_scheduler.entrypoints.tick import tick_loop
from hopcast_scheduler.service_layer.dispatch import DISPATCH
from hopcast_scheduler.service_layer.handlers import SchedulerDeps
from hopcast_shared.dispatch import bind
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.settings import load
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition() -> ServiceDefinition:
    settings = load(SchedulerSettings)
    deps = SchedulerDeps(run_deadline=timedelta(seconds=settings.run_deadline_s))
    return ServiceDefinition(
        name="scheduler",
        # content, billing and publisher events: the stages of the runs it follows.
        consumes=[UPSTREAM, CONTENT, BILLING, PUBLISHER, ANALYTICS],
        handlers=bind(DISPATCH, deps),
        migrations_dir=MIGRATIONS,
        background=[
            tick_loop(deps, settings),
            deadline_watch(deps, settings),
            purge_loop(purge, settings.purge_interval_s),
        ],
        http_routes=partial(routes, deps=deps),
    )
