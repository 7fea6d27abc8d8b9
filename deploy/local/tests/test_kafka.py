"""The session's real broker does what the services rely on: the contract's topics with their layout,
no topic created by accident, idempotent and transactional producers, read_committed consumers,
and offsets committed inside a transaction (consume-transform-produce)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.topics import DLQ_TOPICS, EVENT_TOPICS, topic_specs
from hopcast_stack.kafka import metadata_ok
from hopcast_stack.pytest_plugin import TestStack

pytestmark = pytest.mark.integration


async def test_broker_serves_metadata_and_logs_through_log4j(stack: TestStack) -> None:
    assert stack.kafka.is_running()
    assert await metadata_ok(stack.kafka_settings)
    # The SLF4J binding works: without it the broker would log nothing at all.
    assert "Kafka Server started" in stack.kafka.log_file.read_text()


async def test_contract_topics_exist_with_their_partitions_and_retention(
    stack: TestStack, admin: AIOKafkaAdminClient
) -> None:
    settings = stack.kafka_settings
    specs = {s.name: s for s in topic_specs(settings)}
    assert set(specs) == set(EVENT_TOPICS) | set(DLQ_TOPICS)
    assert set(specs) <= set(await admin.list_topics())

    described = await admin.describe_topics(list(specs))
    assert {t["topic"]: len(t["partitions"]) for t in described} == {name: 6 for name in specs}

    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in specs])
    configs = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in responses
        for resource in response.resources
    }
    for name in EVENT_TOPICS:
        assert configs[name]["retention.ms"] == str(settings.retention_ms) == str(7 * 24 * 3600 * 1000)
        assert configs[name]["cleanup.policy"] == "delete"
    for name in DLQ_TOPICS:
        assert configs[name]["retention.ms"] == str(settings.dlq_retention_ms) == str(30 * 24 * 3600 * 1000)


async def test_creating_topics_again_creates_nothing(stack: TestStack) -> None:
    assert await stack.kafka.create_topics(stack.kafka_settings) == []


async def test_a_prefixed_layout_is_created_on_demand(stack: TestStack, admin: AIOKafkaAdminClient) -> None:
    prefixed = stack.kafka_settings.model_copy(update={"topic_prefix": f"p{uuid.uuid4().hex[:8]}."})
    created = await stack.kafka.create_topics(prefixed)
    assert sorted(created) == sorted(prefixed.topic(name) for name in (*EVENT_TOPICS, *DLQ_TOPICS))
    # Metadata reaches the broker's cache a moment after the controller created the topics.
    listed: set[str] = set()
    for _ in range(50):
        listed = set(await admin.list_topics())
        if set(created) <= listed:
            break
        await asyncio.sleep(0.1)
    assert set(created) <= listed


async def test_topics_are_not_created_by_producing_to_them(stack: TestStack, admin: AIOKafkaAdminClient) -> None:
    name = f"typo.{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**connection_kwargs(stack.kafka_settings), request_timeout_ms=2000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(name, b"lost")
    finally:
        await producer.stop()
    assert name not in await admin.list_topics()


async def test_idempotent_producer_writes_each_record_once_in_order(stack: TestStack, fresh_topic, read_all) -> None:
    topic = await fresh_topic()
    producer = AIOKafkaProducer(**connection_kwargs(stack.kafka_settings), enable_idempotence=True)
    await producer.start()
    try:
        sent = [f"event-{i}".encode() for i in range(50)]
        for value in sent:
            await producer.send(topic, value, key=b"org-1")
        await producer.flush()
        # InitProducerId succeeded: a broker that refuses idempotence never hands out a producer id.
        assert producer._txn_manager is not None and producer._txn_manager.producer_id >= 0
    finally:
        await producer.stop()

    records = await read_all(stack.kafka_settings, topic, expect=len(sent))
    assert [r.value for r in records] == sent
    assert [r.offset for r in records] == list(range(len(sent)))


async def test_transactions_commit_and_abort_as_read_committed_consumers_see_them(
    stack: TestStack, fresh_topic, read_all
) -> None:
    topic = await fresh_topic(partitions=2)
    producer = AIOKafkaProducer(**connection_kwargs(stack.kafka_settings), transactional_id=f"tx-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1", key=b"a")
            await producer.send(topic, b"committed-2", key=b"b")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted", key=b"a")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-3", key=b"a")
    finally:
        await producer.stop()

    committed = await read_all(stack.kafka_settings, topic, isolation_level="read_committed", expect=3)
    assert sorted(r.value for r in committed) == [b"committed-1", b"committed-2", b"committed-3"]
    # The aborted record was written (a read_uncommitted consumer sees it): read_committed filtered it.
    everything = await read_all(stack.kafka_settings, topic, expect=4)
    assert b"aborted" in {r.value for r in everything}


async def test_offsets_commit_inside_the_producers_transaction(
    stack: TestStack, fresh_topic, admin: AIOKafkaAdminClient
) -> None:
    source, target = await fresh_topic(), await fresh_topic()
    group = f"group-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(**connection_kwargs(stack.kafka_settings), transactional_id=f"tx-{uuid.uuid4()}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(target, b"derived")
            await producer.send_offsets_to_transaction({TopicPartition(source, 0): 7}, group)
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({TopicPartition(source, 0): 99}, group)
        await producer.abort_transaction()
    finally:
        await producer.stop()

    offsets = await admin.list_consumer_group_offsets(group)
    assert offsets[TopicPartition(source, 0)].offset == 7
