"""Fixtures for the kernel's tests: isolated topics and databases on the session's real stack."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ensure_topics

T = TypeVar("T")


@pytest.fixture
async def kafka(stack: Any) -> KafkaSettings:
    """KafkaSettings whose topics are this test's alone (a unique prefix), already created."""
    settings = stack.kafka_settings.model_copy(
        update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}.", "partitions": 3}
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def database_url(stack: Any) -> str:
    """A fresh, empty database (pgvector available) for this test."""
    return await stack.new_database("kernel")


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(enable_idempotence=True, **connection_kwargs(kafka))
    await p.start()
    yield p
    await p.stop()


async def eventually(check: Callable[[], Awaitable[T]], *, within: float = 30.0, interval: float = 0.1) -> T:
    """Wait until `check()` returns something truthy; fail with its last value on timeout."""
    deadline = asyncio.get_running_loop().time() + within
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {last!r}")
        await asyncio.sleep(interval)


async def read_topic(
    kafka: KafkaSettings, topic: str, *, expect: int, within: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a whole topic from the beginning until `expect` records arrived (or time ran out)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = asyncio.get_running_loop().time() + within
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for recs in batch.values():
                records.extend(recs)
        # A short extra read shows that no more than expected arrived.
        batch = await consumer.getmany(timeout_ms=300)
        for recs in batch.values():
            records.extend(recs)
    finally:
        await consumer.stop()
    return records
