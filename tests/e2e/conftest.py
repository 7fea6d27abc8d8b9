"""The end-to-end suite's world: the four services as real processes (`python -m <module>`) on
the session's broker and PostgreSQL (topics under a prefix of their own, a fresh database each,
the sandbox publisher), an upstream producer, and a dashboard that reads the outbound topics.

Tests talk to the system only as an upstream producer and a dashboard would: they send facts to
upstream.events and read content.events, billing.events, publisher.events, analytics.events and
the dead-letter topics. Each test works in organizations of its own, so tests share the services
and still see only their own runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from hopcast_stack.harness import OUTBOUND, Dashboard, Tenant
from hopcast_stack.pytest_plugin import TestStack
from hopcast_stack.services import ServiceSet
from hopcast_stack.upstream import Upstream
from hopcast_stack.view import follow


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def hopcast(stack: TestStack) -> AsyncIterator[ServiceSet]:
    """The four services, started once for the suite (about ten seconds), stopped at its end."""
    services = await stack.start_services()
    try:
        yield services
    finally:
        services.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dashboard(hopcast: ServiceSet) -> AsyncIterator[Dashboard]:
    board = Dashboard()
    following = asyncio.Event()

    async def read() -> None:
        async for message in follow(hopcast.kafka, OUTBOUND, from_beginning=True, ready=following):
            board.add(message)

    task = asyncio.create_task(read())
    await asyncio.wait_for(following.wait(), timeout=30)
    yield board
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def upstream(hopcast: ServiceSet) -> AsyncIterator[Upstream]:
    async with Upstream(hopcast.kafka_as("upstream"), keyring=hopcast.keyring, observer=hopcast.kafka) as producer:
        yield producer


@pytest.fixture
def tenant(upstream: Upstream, dashboard: Dashboard, hopcast: ServiceSet) -> Callable[[], Tenant]:
    """`tenant()` makes a new organization for this test."""
    return lambda: Tenant(upstream, dashboard, hopcast)
