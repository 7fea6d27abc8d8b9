"""The security suite's world (hopcast_stack.probe.World): the four services as real processes on
the session's stack (topics under a prefix of their own, fresh databases), a recorder of the
saga's topics and dead letters, producers, and every plaintext token the suite sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiokafka import AIOKafkaProducer

from hopcast_shared.kafka import connection_kwargs
from hopcast_stack.probe import World
from hopcast_stack.pytest_plugin import TestStack
from hopcast_stack.upstream import Upstream
from hopcast_stack.workload import RECORDED, Recorder


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(stack: TestStack) -> AsyncIterator[World]:
    services = await stack.start_services()
    try:
        async with (
            Recorder(services.kafka, RECORDED) as recorder,
            Upstream(services.kafka_as("upstream"), keyring=services.keyring, observer=services.kafka) as upstream,
        ):
            producer = AIOKafkaProducer(
                enable_idempotence=True, max_request_size=4 * 1024 * 1024, **connection_kwargs(services.kafka)
            )
            await producer.start()
            try:
                yield World(services, recorder, upstream, producer)
            finally:
                await producer.stop()
    finally:
        services.stop()
