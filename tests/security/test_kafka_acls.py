"""Who may do what on the test session's broker, which runs as `make up`'s does (SASL/SCRAM-SHA-512,
the StandardAuthorizer, the ACLs of hopcast_shared.acls): the issue's attack (a forged
PendingPostCreated on content.events and a forged CreditsDebited on billing.events from an
outside producer) is refused by the broker, and so is every write, read and group the table
does not grant, while what it grants works."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)
from pydantic import SecretStr

from hopcast_shared.acls import PRINCIPALS, acl_table, by_principal
from hopcast_shared.contract.examples import example_event
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import BILLING, CONTENT, DLQ_TOPICS, EVENT_TOPICS, ensure_topics
from hopcast_stack.pytest_plugin import TestStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ALL_TOPICS = (*EVENT_TOPICS, *DLQ_TOPICS)


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"acl{uuid.uuid4().hex[:8]}."


@pytest.fixture
async def granted(stack: TestStack, prefix: str) -> str:
    await ensure_topics(stack.kafka_settings.model_copy(update={"topic_prefix": prefix, "partitions": 1}))
    await stack.grant(prefix)
    return prefix


def forged(type_name: str) -> bytes:
    return example_event(type_name, organization_id=str(uuid.uuid4())).to_json()


async def write(kafka: KafkaSettings, topic: str, value: bytes = b"{}") -> str:
    """'ok', or the name of the error the broker answered a write to `topic` with."""
    producer = AIOKafkaProducer(enable_idempotence=True, request_timeout_ms=5000, **connection_kwargs(kafka))
    try:
        await asyncio.wait_for(producer.start(), 20)
        await asyncio.wait_for(producer.send_and_wait(kafka.topic(topic), value, key=b"k"), 20)
        return "ok"
    except KafkaError as exc:
        return type(exc).__name__
    finally:
        await producer.stop()


async def writes(kafka: KafkaSettings, topics: tuple[str, ...]) -> dict[str, str]:
    """One producer trying every topic in turn: topic -> 'ok' or the error's name."""
    producer = AIOKafkaProducer(enable_idempotence=True, request_timeout_ms=5000, **connection_kwargs(kafka))
    outcome: dict[str, str] = {}
    try:
        try:
            await producer.start()
        except KafkaError as exc:  # an idempotent producer with no topic to write gets no producer id
            return dict.fromkeys(topics, type(exc).__name__)
        for topic in topics:
            try:
                await asyncio.wait_for(producer.send_and_wait(kafka.topic(topic), b"{}", key=b"k"), 20)
                outcome[topic] = "ok"
            except KafkaError as exc:
                outcome[topic] = type(exc).__name__
    finally:
        await producer.stop()
    return outcome


async def read(kafka: KafkaSettings, topic: str) -> str:
    """'ok' when `kafka`'s principal may fetch `topic` (no group), else the error's name."""
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        [described] = await admin.describe_topics([kafka.topic(topic)])
    finally:
        await admin.close()
    if described["error_code"] == TopicAuthorizationFailedError.errno:  # not even its metadata
        return TopicAuthorizationFailedError.__name__
    consumer = AIOKafkaConsumer(enable_auto_commit=False, request_timeout_ms=5000, **connection_kwargs(kafka))
    await consumer.start()
    try:
        tp = TopicPartition(kafka.topic(topic), 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), 20)
        return "ok"
    except KafkaError as exc:
        return type(exc).__name__
    finally:
        await consumer.stop()


async def join(kafka: KafkaSettings, topic: str, group: str) -> str:
    """'ok' when `kafka`'s principal may consume `topic` in `group` (and commit), else the error's name."""
    consumer = AIOKafkaConsumer(
        kafka.topic(topic), group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
        request_timeout_ms=5000, **connection_kwargs(kafka),
    )  # fmt: skip
    try:
        await asyncio.wait_for(consumer.start(), 30)
        await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
        await asyncio.wait_for(consumer.commit(), 30)
        return "ok"
    except KafkaError as exc:
        return type(exc).__name__
    finally:
        await consumer.stop()


async def test_the_forged_events_of_the_issue_are_refused_by_the_broker(stack: TestStack, granted: str) -> None:
    upstream = stack.kafka_as("upstream", granted)
    # The attack: an outside producer forges content's draft and billing's debit.
    assert await write(upstream, CONTENT, forged("PendingPostCreated")) == TopicAuthorizationFailedError.__name__
    assert await write(upstream, BILLING, forged("CreditsDebited")) == TopicAuthorizationFailedError.__name__
    # Without credentials, or with a wrong password, there is no connection at all.
    anonymous = KafkaSettings(bootstrap_servers=stack.kafka_bootstrap, topic_prefix=granted)
    assert await write(anonymous, BILLING, forged("CreditsDebited")) in (
        KafkaConnectionError.__name__,
        "KafkaTimeoutError",
    )
    guessed = upstream.model_copy(update={"sasl_username": "billing", "sasl_password": SecretStr("billing")})
    assert await write(guessed, BILLING, forged("CreditsDebited")) != "ok"
    # Another service and the dashboard may not forge them either; their owners may write them.
    assert (
        await write(stack.kafka_as("content", granted), BILLING, forged("CreditsDebited"))
        == "TopicAuthorizationFailedError"
    )
    assert (
        await write(stack.kafka_as("billing", granted), CONTENT, forged("PendingPostCreated"))
        == "TopicAuthorizationFailedError"
    )
    assert await write(stack.kafka_as("content", granted), CONTENT, forged("PendingPostCreated")) == "ok"
    assert await write(stack.kafka_as("billing", granted), BILLING, forged("CreditsDebited")) == "ok"


async def test_every_principal_writes_exactly_the_topics_its_acls_name(stack: TestStack, granted: str) -> None:
    table = by_principal(acl_table(granted))
    for principal in PRINCIPALS:
        if principal == "admin":
            continue
        allowed = {a.name.removeprefix(granted) for a in table.get(principal, []) if a.operation == "write"}
        outcome = await writes(stack.kafka_as(principal, granted), ALL_TOPICS)
        assert {t for t, o in outcome.items() if o == "ok"} == allowed, (principal, outcome)
        refusals = {TopicAuthorizationFailedError.__name__, ClusterAuthorizationFailedError.__name__}
        assert set(outcome.values()) <= {"ok", *refusals}, (principal, outcome)
    # Sanity of the table itself: upstream writes upstream.events alone, the dashboard nothing.
    assert [a.name for a in table["upstream"]] == [f"{granted}upstream.events"]
    assert not [a for a in table["dashboard"] if a.operation == "write"]


async def test_reads_and_groups_are_each_principals_own(stack: TestStack, granted: str) -> None:
    billing = stack.kafka_as("billing", granted)
    dashboard = stack.kafka_as("dashboard", granted)
    # Billing consumes content.events with its own group; not another's dead letters, not content's group.
    # (It reads every event topic since it learns of run deadlines from scheduler.events.)
    assert await join(billing, "content.events", "billing") == "ok"
    assert await read(billing, "content.dlq") == TopicAuthorizationFailedError.__name__
    assert await join(billing, "content.events", "content") == GroupAuthorizationFailedError.__name__
    # The dashboard reads analytics.events in a group of its own, nothing else, no service's group.
    assert await join(dashboard, "analytics.events", f"dashboard-{uuid.uuid4().hex[:6]}") == "ok"
    assert await read(dashboard, "billing.events") == TopicAuthorizationFailedError.__name__
    assert await join(dashboard, "analytics.events", "scheduler") == GroupAuthorizationFailedError.__name__
    # Positive controls of `read`: billing reads what it consumes, admin anything.
    assert await read(billing, "upstream.events") == "ok"
    assert await read(stack.kafka_settings.model_copy(update={"topic_prefix": granted}), "billing.dlq") == "ok"
    # Upstream reads nothing, not even its own topic.
    assert await read(stack.kafka_as("upstream", granted), "upstream.events") == TopicAuthorizationFailedError.__name__


async def test_the_monitor_reads_the_services_lag_and_no_message(stack: TestStack, granted: str) -> None:
    """`monitor` (the Kafka exporter) sees each service group's committed offsets, so lag is known
    when every consumer is down, and can read no event nor touch another group."""
    billing = stack.kafka_as("billing", granted)
    monitor = stack.kafka_as("monitor", granted)
    assert await join(billing, "content.events", "billing") == "ok"  # billing's group has offsets now
    admin = AIOKafkaAdminClient(**connection_kwargs(monitor))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets("billing")
        # (The session's other tests commit in group billing too, on their own prefixes.)
        assert f"{granted}content.events" in {tp.topic for tp in offsets}
        groups = {g[0] for g in await admin.list_consumer_groups()}
        assert "billing" in groups
        assert not any(g.startswith("dashboard") for g in groups)  # not its business
    finally:
        await admin.close()
    assert await read(monitor, "content.events") == TopicAuthorizationFailedError.__name__
    assert await join(monitor, "content.events", "monitor") == GroupAuthorizationFailedError.__name__
