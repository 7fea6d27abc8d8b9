"""Wiring: the publisher's keyring, adapters, handlers, consumed topics, background loops
(publishing, purge) and HTTP routes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from hopcast_publisher.adapters import repository as repo
from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.platforms.base import PlatformAdapter
from hopcast_publisher.adapters.platforms.registry import build_adapters
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.http import routes
from hopcast_publisher.handlers import PublisherHandlers
from hopcast_publisher.publishing import PublishingLoop
from hopcast_shared.crypto import Keyring, load_keyring
from hopcast_shared.retention import purge_loop
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import load
from hopcast_shared.topics import BILLING, CONTENT, UPSTREAM

MIGRATIONS = Path(__file__).parent / "migrations"


def definition(
    *,
    settings: PublisherSettings | None = None,
    adapters: Mapping[str, PlatformAdapter] | None = None,
    keyring: Keyring | None = None,
) -> ServiceDefinition:
    """The publisher; tests pass their own settings, adapters (fakes) or keyring."""
    settings = settings or load(PublisherSettings)
    tokens = AccountTokens(keyring or load_keyring())
    platform_adapters = adapters if adapters is not None else build_adapters(settings)
    handlers = PublisherHandlers(tokens)

    async def publishing_loop(runtime: ServiceRuntime) -> None:
        loop = PublishingLoop(runtime.db, runtime.kafka, platform_adapters, tokens, settings)
        try:
            await loop.run()
        except asyncio.CancelledError:
            for adapter in platform_adapters.values():
                await adapter.close()
            raise

    return ServiceDefinition(
        name="publisher",
        consumes=[UPSTREAM, CONTENT, BILLING],
        handlers=handlers.handlers(),
        migrations_dir=MIGRATIONS,
        background=[publishing_loop, purge_loop(repo.purge, settings.purge_interval_s)],
        http_routes=routes,
    )
