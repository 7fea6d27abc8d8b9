"""Wiring: billing's dependencies and handlers, consumed topics, purge job and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from hopcast_billing.adapters.ledger import purge
from hopcast_billing.config import BillingSettings, PriceSettings
from hopcast_billing.entrypoints.http import routes
from hopcast_billing.service_layer.handlers import DISPATCH, BillingDeps
from hopcast_shared.dispatch import bind
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition
from hopcast_shared.settings import load
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER, SCHEDULER, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition() -> ServiceDefinition:
    deps = BillingDeps(prices=load(PriceSettings).prices())
    return ServiceDefinition(
        name="billing",
        consumes=[UPSTREAM, SCHEDULER, CONTENT, PUBLISHER, ANALYTICS],
        handlers=bind(DISPATCH, deps),
        migrations_dir=MIGRATIONS,
        background=[purge_loop(purge, load(BillingSettings).purge_interval_s)],
        http_routes=routes,
    )
