"""The kernel on the real broker and database: outbox -> Kafka -> inbox, duplicates, crashes,
dead letters, retries and trace context.

A small test service, "ledgerlet", counts organizations: for each OrganizationCreated it
inserts a row and emits OrganizationRestored (any contract type will do) to analytics.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import OrganizationCreated, OrganizationRestored, ScheduleRunCompleted, new_event
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.dlq import read_dead_letters, replay_stored, stored_dead_letters
from hopcast_shared.handling import BatchedHandler, EventContext, PermanentError
from hopcast_shared.outbox import OutboxRelay, OutboxRow, event_rows, write_outbox
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, eventually, read_topic
from hopcast_shared.topics import ANALYTICS, UPSTREAM, TopicSpec, dlq_topic, ensure_topics

pytestmark = pytest.mark.integration

SERVICE = "ledgerlet"


class Behaviour:
    """How the test handler behaves: fail the first N times, or always with a given error."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_first = 0
        self.error: type[BaseException] = RuntimeError
        self.poison: set[str] = set()  # organization names refused for good


async def _orgs(db: Database) -> list[str]:
    rows = await db.pool.fetch("SELECT name FROM organizations ORDER BY name")
    return [r["name"] for r in rows]


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    (tmp_path / "0001_organizations.sql").write_text(
        "CREATE TABLE organizations (id uuid PRIMARY KEY, name text NOT NULL);"
    )
    return tmp_path


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def definition(migrations_dir: Path, behaviour: Behaviour) -> ServiceDefinition:
    async def organization_created(ctx: EventContext, data: OrganizationCreated) -> None:
        behaviour.calls += 1
        if behaviour.calls <= behaviour.fail_first:
            raise behaviour.error("induced failure")
        if data.name in behaviour.poison:
            raise PermanentError(f"{data.name} is refused")
        await ctx.conn.execute("INSERT INTO organizations (id, name) VALUES ($1, $2)", data.organization_id, data.name)
        await ctx.emit(OrganizationRestored(organization_id=data.organization_id), topics=[ANALYTICS])

    return ServiceDefinition(
        name=SERVICE,
        consumes=[UPSTREAM],
        handlers={"OrganizationCreated": organization_created},
        migrations_dir=migrations_dir,
    )


@pytest.fixture
def service_settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(
        name=SERVICE,
        database_url=database_url,
        http_port=18080,
        handler_max_attempts=3,
        handler_backoff_initial_s=0.01,
        handler_backoff_max_s=0.05,
        outbox_poll_interval_s=0.2,
    )


@pytest.fixture
async def service(
    definition: ServiceDefinition, service_settings: ServiceSettings, kafka: KafkaSettings
) -> AsyncIterator[ServiceRuntime]:
    # The test service's own dead-letter topic (the four services' are created with the others).
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    async with ServiceRuntime(definition, settings=service_settings, kafka=kafka) as runtime:
        yield runtime


def _restored(kafka: KafkaSettings, org: uuid.UUID) -> list[OutboxRow]:
    """The outbox row of an OrganizationRestored on analytics.events, as a handler writes it."""
    return event_rows(
        kafka,
        [OrganizationRestored(organization_id=org)],
        organization_id=org,
        source="hopcast/test",
        correlation_id=None,
        causation_id=None,
        trace=[],
        topics=[ANALYTICS],
    )


def _created(org: uuid.UUID, name: str) -> Any:
    return new_event(OrganizationCreated(organization_id=org, name=name), organization_id=org, source="upstream/test")


async def _send(
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    value: bytes,
    key: bytes | None = None,
    partition: int | None = None,
) -> int:
    """Send to upstream.events; returns the partition the record went to."""
    metadata = await producer.send_and_wait(kafka.topic(UPSTREAM), value, key=key, partition=partition)
    return int(metadata.partition)


async def test_outbox_to_kafka_to_inbox_round_trip(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    event = _created(org, "Acme")
    await _send(producer, kafka, event.to_json(), str(org).encode())

    assert await eventually(lambda: _orgs(service.db)) == ["Acme"]
    inbox = await service.db.pool.fetch("SELECT message_id, outcome FROM inbox")
    assert [(r["message_id"], r["outcome"]) for r in inbox] == [(str(event.id), "handled")]

    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
    assert len(out) == 1
    emitted = json.loads(out[0].value)
    assert emitted["type"] == "OrganizationRestored"
    assert emitted["causationid"] == str(event.id)
    assert out[0].key == str(org).encode()  # keyed by organization id
    assert await eventually(lambda: _outbox_empty(service.db))


async def _outbox_empty(db: Database) -> bool:
    return await db.pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_the_same_event_delivered_twice_has_one_effect(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    event = _created(org, "Twice")
    for _ in range(3):
        partition = await _send(producer, kafka, event.to_json(), str(org).encode())
    marker_org = uuid.uuid4()
    marker = _created(marker_org, "Zmarker")
    # Same partition: handled after the copies.
    await _send(producer, kafka, marker.to_json(), str(marker_org).encode(), partition=partition)

    await eventually(lambda: _has(service.db, "Zmarker"))
    assert await _orgs(service.db) == ["Twice", "Zmarker"]
    outcomes = await service.db.pool.fetchval("SELECT count(*) FROM inbox")
    assert outcomes == 2
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=2)
    assert len(out) == 2


async def test_a_crash_after_commit_and_before_publish_loses_nothing(
    database_url: str, migrations_dir: Path, kafka: KafkaSettings
) -> None:
    # The business transaction commits its outbox row; the process dies before any relay ran.
    db = await Database.open(database_url)
    org = uuid.uuid4()
    async with db.transaction() as conn:
        [row] = _restored(kafka, org)
        await write_outbox(conn, [row])
    await db.close()

    # A new process starts: its relay finds the row and publishes it, once.
    db = await Database.open(database_url)

    async def producer_factory() -> AIOKafkaProducer:
        from hopcast_shared.kafka import make_producer

        p = make_producer(kafka, "test-relay")
        await p.start()
        return p

    relay = OutboxRelay(db, producer_factory, service="test", poll_interval_s=0.1)
    await relay.start()
    try:
        out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
        assert [json.loads(r.value)["id"] for r in out] == [str(row.event_id)]
        assert await eventually(lambda: _outbox_empty(db))
    finally:
        await relay.stop()
        await db.close()


async def test_a_malformed_message_lands_in_the_dlq_and_the_consumer_goes_on(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    key = str(org).encode()
    await _send(producer, kafka, b"this is not json", key)
    bad = json.loads(_created(org, "x").to_json())
    del bad["data"]["name"]  # a required field is missing
    await _send(producer, kafka, json.dumps(bad).encode(), key)
    await _send(producer, kafka, b"\xff\xfe binary", key)
    await _send(producer, kafka, _created(org, "Good").to_json(), key)

    assert await eventually(lambda: _orgs(service.db)) == ["Good"]
    letters = await eventually(lambda: _letters(kafka, 3))
    kinds = sorted(letter.error_kind for letter in letters)
    assert kinds == ["decode", "decode", "data"] or kinds == sorted(["decode", "data", "decode"])
    missing = next(letter for letter in letters if letter.error_kind == "data")
    assert missing.event_id == bad["id"] and missing.event_type == "OrganizationCreated"
    assert "name" in missing.error
    assert missing.source.topic == kafka.topic(UPSTREAM)
    assert missing.original_json["data"] == bad["data"]


async def _letters(kafka: KafkaSettings, n: int) -> list[Any]:
    letters = await read_dead_letters(kafka, SERVICE, timeout_s=0.5)
    return letters if len(letters) >= n else []


async def test_transient_failures_are_retried_then_succeed(
    service: ServiceRuntime, behaviour: Behaviour, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    behaviour.fail_first = 2
    org = uuid.uuid4()
    await _send(producer, kafka, _created(org, "Flaky").to_json(), str(org).encode())
    assert await eventually(lambda: _orgs(service.db)) == ["Flaky"]
    assert behaviour.calls == 3
    assert await read_dead_letters(kafka, SERVICE, timeout_s=0.5) == []


async def test_a_handler_that_keeps_failing_dead_letters_and_replay_after_a_fix_works(
    service: ServiceRuntime, behaviour: Behaviour, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    behaviour.fail_first = 3  # = handler_max_attempts
    org = uuid.uuid4()
    event = _created(org, "Stubborn")
    partition = await _send(producer, kafka, event.to_json(), str(org).encode())
    letters = await eventually(lambda: _letters(kafka, 1))
    assert letters[0].event_id == str(event.id)
    assert letters[0].error_kind == "failed" and letters[0].attempts == 3
    assert "induced failure" in letters[0].error
    assert await _orgs(service.db) == []

    # The "fix" is in (the handler no longer fails): replaying what the database kept (as
    # `hopcast dlq replay` does) handles it, once.
    stored = await stored_dead_letters(service.db.pool)  # type: ignore[arg-type]
    assert [s.event_id for s in stored] == [str(event.id)]
    async with service.db.transaction() as conn:
        assert await replay_stored(kafka, conn, stored) == 1
    assert await eventually(lambda: _orgs(service.db)) == ["Stubborn"]
    async with service.db.transaction() as conn:
        assert await replay_stored(kafka, conn, stored) == 1  # a second replay changes nothing
    marker_org = uuid.uuid4()
    await _send(producer, kafka, _created(marker_org, "Zmarker").to_json(), str(marker_org).encode(), partition)
    await eventually(lambda: _has(service.db, "Zmarker"))
    assert await _orgs(service.db) == ["Stubborn", "Zmarker"]


async def _has(db: Database, name: str) -> bool:
    return name in await _orgs(db)


async def test_a_permanent_error_dead_letters_at_once(
    service: ServiceRuntime, behaviour: Behaviour, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    behaviour.fail_first = 100
    behaviour.error = PermanentError
    org = uuid.uuid4()
    await _send(producer, kafka, _created(org, "Never").to_json(), str(org).encode())
    letters = await eventually(lambda: _letters(kafka, 1))
    assert letters[0].error_kind == "rejected" and letters[0].attempts == 1
    assert behaviour.calls == 1


async def test_an_unreachable_database_leaves_the_message_unacknowledged(
    service: ServiceRuntime, behaviour: Behaviour, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    # Infrastructure errors never dead-letter: the offset is not committed, Kafka redelivers.
    behaviour.fail_first = 4  # more than handler_max_attempts (3): the first delivery gives up
    behaviour.error = ConnectionRefusedError
    org = uuid.uuid4()
    await _send(producer, kafka, _created(org, "Patient").to_json(), str(org).encode())
    assert await eventually(lambda: _orgs(service.db), within=45) == ["Patient"]
    assert behaviour.calls == 5  # 3 on the first delivery, 2 on the redelivery
    assert await read_dead_letters(kafka, SERVICE, timeout_s=0.5) == []


async def test_trace_context_flows_from_the_consumed_event_to_the_emitted_one(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    assert trace.get_tracer_provider().__class__.__name__ == "TracerProvider"  # the SDK's (root conftest)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    org = uuid.uuid4()
    await producer.send_and_wait(
        kafka.topic(UPSTREAM),
        _created(org, "Traced").to_json(),
        key=str(org).encode(),
        headers=[("traceparent", traceparent.encode())],
    )
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
    headers = dict(out[0].headers)
    assert headers["traceparent"].decode().split("-")[1] == trace_id
    assert headers["content-type"] == b"application/cloudevents+json"


async def test_migrations_apply_once_under_concurrency_and_refuse_edits(
    database_url: str, migrations_dir: Path
) -> None:
    import asyncio

    from hopcast_shared.migrations import MigrationError, apply_migrations, kernel_migrations, load_migrations

    migrations = kernel_migrations() + load_migrations("svc", migrations_dir)
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(apply_migrations(c, migrations) for c in conns))
        assert sorted(len(a) for a in applied) == [0, 0, len(migrations)]
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(migrations)
        (migrations_dir / "0001_organizations.sql").write_text("CREATE TABLE changed (id int);")
        with pytest.raises(MigrationError, match="forward-only"):
            await apply_migrations(conns[0], kernel_migrations() + load_migrations("svc", migrations_dir))
    finally:
        for c in conns:
            await c.close()


async def test_two_relays_publish_each_row_once(database_url: str, kafka: KafkaSettings) -> None:
    from hopcast_shared.kafka import make_producer

    db = await Database.open(database_url)
    rows = [row for i in range(200) for row in _restored(kafka, uuid.UUID(int=i + 1))]
    async with db.transaction() as conn:
        await write_outbox(conn, rows)

    async def producer_factory() -> AIOKafkaProducer:
        p = make_producer(kafka, "test-relay")
        await p.start()
        return p

    relays = [OutboxRelay(db, producer_factory, service="test", batch_size=20, poll_interval_s=0.05) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:
        assert await eventually(lambda: _outbox_empty(db))
        out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=200)
        ids = [json.loads(r.value)["id"] for r in out]
        assert sorted(ids) == sorted(str(r.event_id) for r in rows)
        assert sum(r.published for r in relays) == 200
    finally:
        for relay in relays:
            await relay.stop()
        await db.close()


async def test_a_row_kafka_refuses_for_good_is_parked_and_the_rest_flows(
    database_url: str, kafka: KafkaSettings
) -> None:
    from hopcast_shared.kafka import make_producer

    db = await Database.open(database_url)
    [good] = _restored(kafka, uuid.uuid4())
    huge = OutboxRow(uuid.uuid4(), "Huge", kafka.topic(ANALYTICS), b"k", b"x" * (3 * 1024 * 1024), [])
    async with db.transaction() as conn:
        await write_outbox(conn, [huge, good])

    async def producer_factory() -> AIOKafkaProducer:
        p = make_producer(kafka, "test-relay")
        await p.start()
        return p

    relay = OutboxRelay(db, producer_factory, service="test", poll_interval_s=0.05)
    await relay.start()
    try:
        out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
        assert [json.loads(r.value)["id"] for r in out] == [str(good.event_id)]
        parked = await eventually(
            lambda: db.pool.fetch("SELECT event_type, last_error FROM outbox WHERE parked_at IS NOT NULL")
        )
        assert parked[0]["event_type"] == "Huge" and "TooLarge" in parked[0]["last_error"]
    finally:
        await relay.stop()
        await db.close()


async def test_a_unique_violation_is_retried_as_a_race_not_dead_lettered(
    service: ServiceRuntime, behaviour: Behaviour, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    behaviour.fail_first = 1
    behaviour.error = asyncpg.UniqueViolationError
    org = uuid.uuid4()
    await _send(producer, kafka, _created(org, "Raced").to_json(), str(org).encode())
    assert await eventually(lambda: _orgs(service.db)) == ["Raced"]
    assert behaviour.calls == 2
    assert await read_dead_letters(kafka, SERVICE, timeout_s=0.5) == []


async def test_a_batch_shares_one_transaction_and_keeps_the_partition_order(
    service: ServiceRuntime,
    behaviour: Behaviour,
    kafka: KafkaSettings,
    definition: ServiceDefinition,
    service_settings: ServiceSettings,
) -> None:
    # One lane: the records share the transactions.
    consumer = EventConsumer(
        SERVICE,
        service.db,
        definition.handlers,
        kafka=kafka,
        settings=service_settings.model_copy(update={"consumer_lanes": 1}),
    )
    events = [_created(uuid.uuid4(), f"org-{i:02d}") for i in range(6)]
    # In the partition's order (as_record gives each record the next offset).
    first = [as_record(e) for e in events[:3]]
    bad = as_record(b"not json")
    rest = [as_record(e) for e in events[3:]]
    seen = as_record(events[0])  # the first event again, in the batch
    outcomes = await consumer.handle_batch([*first, bad, *rest, seen])

    assert outcomes == ["handled"] * 3 + ["dead_lettered"] + ["handled"] * 3 + ["duplicate"]
    assert await _orgs(service.db) == [f"org-{i:02d}" for i in range(6)]
    # One transaction per run of batchable records: the malformed one splits the batch in two.
    stamps = await service.db.pool.fetch("SELECT DISTINCT handled_at FROM inbox WHERE outcome = 'handled'")
    assert len(stamps) == 2
    assert behaviour.calls == 6
    # Every emitted event is in the outbox once (the relay may already have sent some).
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=6)
    assert sorted(json.loads(r.value)["causationid"] for r in out) == sorted(str(e.id) for e in events)


async def test_one_bad_event_in_a_batch_is_dead_lettered_and_the_rest_committed(
    service: ServiceRuntime, behaviour: Behaviour, kafka: KafkaSettings
) -> None:
    assert service.consumer is not None
    behaviour.poison = {"org-2"}
    events = [_created(uuid.uuid4(), f"org-{i}") for i in range(5)]
    records = [as_record(e) for e in events]
    outcomes = await service.consumer.handle_batch(records)

    assert outcomes == ["handled", "handled", "dead_lettered", "handled", "handled"]
    assert await _orgs(service.db) == ["org-0", "org-1", "org-3", "org-4"]
    letters = await eventually(lambda: _letters(kafka, 1))
    assert [(x.event_id, x.error_kind) for x in letters] == [(str(events[2].id), "rejected")]
    # The batch was rolled back and each event handled alone: the good ones are not twice in the outbox.
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=4)
    assert len(out) == 4
    # Handled again (a redelivery of the whole batch) changes nothing: the refused one is refused
    # again, and recognised as dead-lettered already (by its place in the log): no second letter.
    again = await service.consumer.handle_batch(records)
    assert again == ["duplicate", "duplicate", "dead_lettered", "duplicate", "duplicate"]
    assert await service.db.pool.fetchval("SELECT count(*) FROM dead_letters") == 1
    assert len(await read_dead_letters(kafka, SERVICE, timeout_s=0.5)) == 1


async def test_a_backlog_is_consumed_in_batches_through_kafka(
    definition: ServiceDefinition,
    service_settings: ServiceSettings,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
) -> None:
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    events = [_created(uuid.uuid4(), f"backlog-{i:03d}") for i in range(120)]
    for event in events:  # waiting before the service starts
        await producer.send(kafka.topic(UPSTREAM), event.to_json(), key=str(event.organizationid).encode())
    await producer.flush()

    async with ServiceRuntime(definition, settings=service_settings, kafka=kafka) as runtime:

        async def all_handled() -> bool:
            return await runtime.db.pool.fetchval("SELECT count(*) FROM organizations") == len(events)

        assert await eventually(all_handled)
        commits = await runtime.db.pool.fetchval("SELECT count(DISTINCT handled_at) FROM inbox")
    # Far fewer transactions than events (the backlog comes in batches of up to 200).
    assert commits < len(events) // 4, commits


async def test_a_batch_of_many_organizations_is_handled_in_lanes_each_in_order(
    service: ServiceRuntime, behaviour: Behaviour, kafka: KafkaSettings
) -> None:
    assert service.consumer is not None
    lanes = service.settings.consumer_lanes
    assert lanes > 1
    behaviour.poison = {"org-07"}
    events = [_created(uuid.uuid4(), f"org-{i:02d}") for i in range(24)]
    records = [as_record(e) for e in events]
    outcomes = await service.consumer.handle_batch([*records, as_record(events[3])])

    # Outcomes in the batch's order; the refused one dead-lettered, the redelivered one a duplicate.
    assert outcomes == ["dead_lettered" if i == 7 else "handled" for i in range(24)] + ["duplicate"]
    assert await _orgs(service.db) == [f"org-{i:02d}" for i in range(24) if i != 7]
    # One transaction per lane, but the refused one's: its lane fell back to one per record.
    lane_of = [zlib.crc32(r.key or b"") % lanes for r in records]
    poisoned = [i for i in range(24) if lane_of[i] == lane_of[7] and i != 7]
    commits = await service.db.pool.fetchval("SELECT count(DISTINCT handled_at) FROM inbox WHERE outcome = 'handled'")
    assert commits == len(set(lane_of)) - 1 + len(poisoned)


async def test_a_batched_handler_gets_its_events_together_however_the_fetch_interleaved_topics(
    service: ServiceRuntime, service_settings: ServiceSettings, kafka: KafkaSettings
) -> None:
    """Records of two topics interleaved in one fetch: the batched handler is called once with
    all of its type's events (each partition's in order), the other topic's handler per event,
    and the outcomes come back in the batch's order."""
    groups: list[list[str]] = []
    completed: list[str] = []

    async def created(items: Any) -> None:
        groups.append([data.name for _, data in items])
        for ctx, data in items:
            await ctx.conn.execute(
                "INSERT INTO organizations (id, name) VALUES ($1, $2)", data.organization_id, data.name
            )

    async def run_completed(ctx: EventContext, data: ScheduleRunCompleted) -> None:
        completed.append(str(data.run_id))

    consumer = EventConsumer(
        SERVICE,
        service.db,
        {"OrganizationCreated": BatchedHandler(created), "ScheduleRunCompleted": run_completed},
        kafka=kafka,
        settings=service_settings.model_copy(update={"consumer_lanes": 1}),
    )
    upstream = [dataclasses.replace(as_record(_created(uuid.uuid4(), f"org-{i}")), partition=i % 2) for i in range(6)]
    runs = [example_event("ScheduleRunCompleted", run_id=str(uuid.uuid4())) for _ in range(3)]
    analytics = [as_record(e, topic=ANALYTICS) for e in runs]
    batch = [upstream[0], analytics[0], upstream[1], upstream[2], analytics[1], upstream[3], upstream[4], analytics[2]]
    batch.append(upstream[5])

    assert await consumer.handle_batch(batch) == ["handled"] * len(batch)
    assert groups == [["org-0", "org-2", "org-4", "org-1", "org-3", "org-5"]]  # partition 0's, then 1's
    assert completed == [str(e.data["run_id"]) for e in runs]
    assert await _orgs(service.db) == [f"org-{i}" for i in range(6)]
