"""Wiring: billing's handlers, consumed topics, purge job and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from hopcast_billing.adapters.ledger import purge
from hopcast_billing.config import BillingSettings
from hopcast_billing.entrypoints.http import routes
from hopcast_billing.handlers import HANDLERS
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.settings import load
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="billing",
        consumes=[UPSTREAM, CONTENT, PUBLISHER, ANALYTICS],
        handlers=HANDLERS,
        migrations_dir=MIGRATIONS,
        background=[purge_loop(purge, load(BillingSettings).purge_interval_s)],
        http_routes=routes,
    )
