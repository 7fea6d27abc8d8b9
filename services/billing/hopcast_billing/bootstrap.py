"""Wiring: billing's handlers, consumed topics and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from hopcast_billing.entrypoints.http import routes
from hopcast_billing.handlers import HANDLERS
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.topics import CONTENT, PUBLISHER, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="billing",
        consumes=[UPSTREAM, CONTENT, PUBLISHER],
        handlers=HANDLERS,
        migrations_dir=MIGRATIONS,
        http_routes=routes,
    )
