"""Fixtures for the local stack's own tests: an admin client on the session's broker, topics of a
test's own, and reading a topic under a chosen isolation level."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.pytest_plugin import TestStack

TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
async def admin(stack: TestStack) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(**connection_kwargs(stack.kafka_settings))
    await client.start()
    yield client
    await client.close()


@pytest.fixture
def fresh_topic(admin: AIOKafkaAdminClient) -> TopicFactory:
    """Create a topic no other test uses; returns its name."""

    async def create(partitions: int = 1) -> str:
        name = f"stack-test.{uuid.uuid4().hex[:12]}"
        await admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    return create


@pytest.fixture
def read_all() -> Callable[..., Awaitable[list[ConsumerRecord[bytes, bytes]]]]:
    """`await read_all(kafka, topic, expect=n, isolation_level=...)`: see `read_topic_from_start`."""
    return read_topic_from_start


async def read_topic_from_start(
    kafka: KafkaSettings, topic: str, *, isolation_level: str = "read_uncommitted", expect: int, within: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the start (all partitions), until `expect` arrived or time ran out,
    then a little longer so that unexpected extra records show too."""
    consumer = AIOKafkaConsumer(isolation_level=isolation_level, enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(records) < expect and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        cluster = await consumer._client.fetch_all_metadata()
        found: set[int] | None = cluster.partitions_for_topic(topic)
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions in the metadata")
