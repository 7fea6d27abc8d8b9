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

from hopcast_shared.topics import SCHEDULER
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


# --- a world with short run deadlines (tests/e2e/test_run_deadlines.py) --------------------------

# Short enough for a test, long enough for a run the services hold to end on its own first.
RUN_DEADLINE_S = 6.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def deadline_world(stack: TestStack) -> AsyncIterator[tuple[ServiceSet, Dashboard, Upstream]]:
    """The four services of their own (topics, databases) with a run deadline of RUN_DEADLINE_S,
    watched twice a second, a dashboard that also reads scheduler.events (ScheduleDue,
    RunDeadlinePassed), and an upstream producer: tests stop and start services in it."""
    services = await stack.start_services(
        env={"SCHEDULER_RUN_DEADLINE_S": str(RUN_DEADLINE_S), "SCHEDULER_DEADLINE_CHECK_INTERVAL_S": "0.5"}
    )
    board = Dashboard()
    following = asyncio.Event()

    async def read() -> None:
        async for message in follow(services.kafka, (*OUTBOUND, SCHEDULER), from_beginning=True, ready=following):
            board.add(message)

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(following.wait(), timeout=30)
        async with Upstream(
            services.kafka_as("upstream"), keyring=services.keyring, observer=services.kafka
        ) as producer:
            yield services, board, producer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        services.stop()
