"""Wiring: the publisher's dependencies (keyring, settings, repositories), adapters, handlers
(the dispatch map bound to them), consumed topics, background loops (publishing, expiry, purge) and
HTTP routes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.media_uploads import PostgresMediaUploads
from hopcast_publisher.adapters.platforms.base import PlatformAdapter
from hopcast_publisher.adapters.platforms.registry import build_adapters
from hopcast_publisher.adapters.retention import purge
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.expiry_watcher import expiry_watcher
from hopcast_publisher.entrypoints.http import routes
from hopcast_publisher.entrypoints.publishing_loop import PublishingLoop
from hopcast_publisher.service_layer.api_versions import report_api_versions
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.handlers import DISPATCH
from hopcast_shared.crypto import Keyring, load_keyring
from hopcast_shared.dispatch import bind
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import load
from hopcast_shared.topics import BILLING, CONTENT, SCHEDULER, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition(
    *,
    settings: PublisherSettings | None = None,
    adapters: Mapping[str, PlatformAdapter] | None = None,
    keyring: Keyring | None = None,
) -> ServiceDefinition:
    """The publisher; tests pass their own settings, adapters (fakes) or keyring."""
    settings = settings or load(PublisherSettings)
    report_api_versions(settings)
    deps = PublisherDeps(tokens=AccountTokens(keyring or load_keyring()), settings=settings)
    uploads = PostgresMediaUploads()  # bound to the database once the service has it
    platform_adapters = adapters if adapters is not None else build_adapters(settings, uploads)

    async def publishing_loop(runtime: ServiceRuntime) -> None:
        uploads.bind(runtime.db)
        loop = PublishingLoop(runtime.db, runtime.kafka, platform_adapters, deps.tokens, settings, deps=deps)
        try:
            await loop.run()
        except asyncio.CancelledError:
            for adapter in platform_adapters.values():
                await adapter.close()
            raise

    return ServiceDefinition(
        name="publisher",
        consumes=[UPSTREAM, SCHEDULER, CONTENT, BILLING],
        handlers=bind(DISPATCH, deps),
        migrations_dir=MIGRATIONS,
        background=[
            publishing_loop,
            expiry_watcher(settings.expiry_interval_s),
            purge_loop(purge, settings.purge_interval_s),
        ],
        http_routes=routes,
    )
