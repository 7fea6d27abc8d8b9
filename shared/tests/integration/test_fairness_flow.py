"""Fairness between organizations on the real broker and database: an organization's event
behind another's backlog on the same partition is handled in the first transaction, each
organization's order is kept, and offsets are committed only after what they cover committed.

A small test service, "fairlet", records each OrganizationCreated it handles (its name, in a
table whose serial id gives the order of the effects) and, on the test's word, waits inside
its handler or fails with an infrastructure error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hopcast_shared.contract import OrganizationCreated, new_event
from hopcast_shared.db import Database
from hopcast_shared.handling import EventContext
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, eventually
from hopcast_shared.topics import UPSTREAM, TopicSpec, dlq_topic, ensure_topics

pytestmark = pytest.mark.integration

SERVICE = "fairlet"
A, B = uuid.uuid4(), uuid.uuid4()


class Behaviour:
    def __init__(self) -> None:
        self.hold: dict[str, asyncio.Event] = {}  # a name's handler waits for its event
        self.infrastructure_failures: dict[str, int] = {}  # a name's handler raises OSError this often


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def definition(tmp_path: Path, behaviour: Behaviour) -> ServiceDefinition:
    (tmp_path / "0001_effects.sql").write_text(
        "CREATE TABLE effects (seq bigserial PRIMARY KEY, org uuid NOT NULL, name text NOT NULL);"
    )

    async def organization_created(ctx: EventContext, data: OrganizationCreated) -> None:
        if data.name in behaviour.hold:
            await behaviour.hold[data.name].wait()
        if behaviour.infrastructure_failures.get(data.name, 0) > 0:
            behaviour.infrastructure_failures[data.name] -= 1
            raise OSError("induced: the database went away")
        await ctx.conn.execute(
            "INSERT INTO effects (org, name) VALUES ($1, $2)", ctx.envelope.organizationid, data.name
        )

    return ServiceDefinition(
        name=SERVICE,
        consumes=[UPSTREAM],
        handlers={"OrganizationCreated": organization_created},
        migrations_dir=tmp_path,
    )


@pytest.fixture
def settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(
        name=SERVICE,
        database_url=database_url,
        http_port=18081,
        handler_max_attempts=2,
        handler_backoff_initial_s=0.01,
        handler_backoff_max_s=0.02,
        consumer_lanes=1,  # every organization in one lane: the round robin alone makes it fair
    )


@pytest.fixture
async def service(
    definition: ServiceDefinition, settings: ServiceSettings, kafka: KafkaSettings
) -> AsyncIterator[ServiceRuntime]:
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    async with ServiceRuntime(definition, settings=settings, kafka=kafka) as runtime:
        yield runtime


def _created(org: uuid.UUID, name: str) -> Any:
    return new_event(OrganizationCreated(organization_id=org, name=name), organization_id=org, source="up/test")


def _burst(n: int) -> list[Any]:
    """n events of organization A, then one of B."""
    return [_created(A, f"A-{i:05d}") for i in range(n)] + [_created(B, "B")]


async def _effects(db: Database, org: uuid.UUID) -> list[str]:
    return [r["name"] for r in await db.pool.fetch("SELECT name FROM effects WHERE org = $1 ORDER BY seq", org)]


async def _committed(kafka: KafkaSettings, partition: int) -> int:
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        tp = TopicPartition(kafka.topic(UPSTREAM), partition)
        offsets = await admin.list_consumer_group_offsets(SERVICE, partitions=[tp])
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return meta.offset if meta is not None and meta.offset >= 0 else 0


async def test_an_organization_behind_another_s_backlog_is_in_the_first_transaction(
    service: ServiceRuntime,
) -> None:
    assert service.consumer is not None
    events = _burst(10_000)
    records = [as_record(e) for e in events]  # one partition, in this order
    assert len({(r.topic, r.partition) for r in records}) == 1

    outcomes = await service.consumer.handle_batch(records)

    assert outcomes == ["handled"] * len(records)
    stamps = await service.db.pool.fetch(
        "SELECT message_id, handled_at FROM inbox WHERE message_id = ANY($1::text[])",
        [str(events[0].id), str(events[-1].id)],
    )
    handled_at = {r["message_id"]: r["handled_at"] for r in stamps}
    assert handled_at[str(events[-1].id)] == handled_at[str(events[0].id)]  # B shares A's first transaction
    assert await _effects(service.db, A) == [f"A-{i:05d}" for i in range(10_000)]
    assert await _effects(service.db, B) == ["B"]
    # Transactions stay within consumer_batch_max records.
    sizes = await service.db.pool.fetch("SELECT count(*) AS n FROM inbox GROUP BY handled_at")
    assert max(r["n"] for r in sizes) <= service.settings.consumer_batch_max


async def test_through_kafka_b_is_handled_while_a_s_backlog_waits_and_no_offset_passes_it(
    definition: ServiceDefinition,
    settings: ServiceSettings,
    behaviour: Behaviour,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
) -> None:
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    events = _burst(5_000)
    held = asyncio.Event()
    behaviour.hold["A-00300"] = held  # A's second transaction waits in its handler
    for event in events:  # queued on one partition before the service starts
        await producer.send(kafka.topic(UPSTREAM), event.to_json(), key=str(event.organizationid).encode(), partition=0)
    await producer.flush()

    async with ServiceRuntime(definition, settings=settings, kafka=kafka) as runtime:
        assert await eventually(lambda: _effects(runtime.db, B), within=30) == ["B"]
        await asyncio.sleep(1.5)  # A stays held: its window is not done
        handled_a = await _effects(runtime.db, A)
        assert handled_a == [f"A-{i:05d}" for i in range(len(handled_a))]
        assert len(handled_a) < 300
        # Nothing past A's first record not yet handled is committed.
        assert await _committed(kafka, 0) <= len(handled_a)

        held.set()

        async def all_handled() -> bool:
            return len(await _effects(runtime.db, A)) == 5_000

        assert await eventually(all_handled, within=60)
        assert await _effects(runtime.db, A) == [f"A-{i:05d}" for i in range(5_000)]
        assert await _effects(runtime.db, B) == ["B"]

        async def all_committed() -> bool:
            return await _committed(kafka, 0) == len(events)

        assert await eventually(all_committed, within=30)


async def test_an_infrastructure_failure_in_a_window_redelivers_it_and_each_effect_happens_once_in_order(
    definition: ServiceDefinition,
    settings: ServiceSettings,
    behaviour: Behaviour,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
) -> None:
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    events = _burst(2_000)
    # Fails the batch, then each of its handle-alone attempts: the window is left unacknowledged.
    behaviour.infrastructure_failures["A-01200"] = 1 + settings.handler_max_attempts
    for event in events:
        await producer.send(kafka.topic(UPSTREAM), event.to_json(), key=str(event.organizationid).encode(), partition=0)
    await producer.flush()

    async with ServiceRuntime(definition, settings=settings, kafka=kafka) as runtime:

        async def all_handled() -> bool:
            return len(await _effects(runtime.db, A)) == 2_000

        assert await eventually(all_handled, within=60)
        assert await _effects(runtime.db, A) == [f"A-{i:05d}" for i in range(2_000)]
        assert await _effects(runtime.db, B) == ["B"]
    assert behaviour.infrastructure_failures["A-01200"] == 0
