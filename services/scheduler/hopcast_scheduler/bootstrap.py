"""Wiring: the scheduler's dependencies and handlers, consumed topics, tick loop, purge job and
HTTP routes."""

from __future__ import annotations

from pathlib import Path

from hopcast_scheduler.adapters.repository import purge
from hopcast_scheduler.config import SchedulerSettings
from hopcast_scheduler.entrypoints.http import routes
from hopcast_scheduler.entrypoints.tick import tick_loop
from hopcast_scheduler.service_layer.handlers import DISPATCH, SchedulerDeps
from hopcast_shared.dispatch import bind
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.settings import load
from hopcast_shared.topics import ANALYTICS, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition() -> ServiceDefinition:
    settings = load(SchedulerSettings)
    deps = SchedulerDeps()
    return ServiceDefinition(
        name="scheduler",
        consumes=[UPSTREAM, ANALYTICS],
        handlers=bind(DISPATCH, deps),
        migrations_dir=MIGRATIONS,
        background=[tick_loop(deps, settings), purge_loop(purge, settings.purge_interval_s)],
        http_routes=routes,
    )
