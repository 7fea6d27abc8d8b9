"""The chaos suite's world: a Kafka broker and a PostgreSQL server of its own (not the session's:
this suite kills and restarts them), the four services on it as real processes, and a recorder
of the saga's topics that outlives the broker's restarts."""

from __future__ import annotations

import atexit
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hopcast_stack.errors import StackError
from hopcast_stack.pytest_plugin import TestStack


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chaos_stack() -> AsyncIterator[TestStack]:
    stack = TestStack.in_new_folder()
    atexit.register(stack.remove)
    try:
        try:
            await stack.start()
        except StackError as exc:
            pytest.fail(f"the chaos stack did not start: {exc}", pytrace=False)
        yield stack
    finally:
        atexit.unregister(stack.remove)
        stack.remove()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster_stack() -> AsyncIterator[TestStack]:
    """A three-broker KRaft cluster (replication 3, min ISR 2) and a PostgreSQL server of its own,
    for the broker-loss test; every JVM is killed at teardown, even after a failure."""
    stack = TestStack.in_new_folder(kafka_brokers=3)
    atexit.register(stack.remove)
    try:
        try:
            await stack.start()
        except StackError as exc:
            pytest.fail(f"the three-broker chaos stack did not start: {exc}", pytrace=False)
        yield stack
    finally:
        atexit.unregister(stack.remove)
        stack.remove()
