"""Consumer batches, on the real broker and database: a batch shares one transaction and keeps the
partition's order, one bad event in it is dead-lettered and the rest committed, a backlog is
consumed in batches, many organizations are handled in lanes each in order, and a batched
handler gets its events together however the fetch interleaved topics. Through the test service
of conftest.py ("ledgerlet").
"""

from __future__ import annotations

import dataclasses
import json
import uuid
import zlib
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import ScheduleRunCompleted
from hopcast_shared.contract.examples import example_event
from hopcast_shared.dlq import read_dead_letters
from hopcast_shared.handling import BatchedHandler, EventContext
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, eventually, read_topic
from hopcast_shared.topics import ANALYTICS, PUBLISHER, UPSTREAM, TopicSpec, dlq_topic, ensure_topics

pytestmark = pytest.mark.integration


def _one_lane(
    name: str, service: ServiceRuntime, handlers: Any, kafka: KafkaSettings, settings: ServiceSettings
) -> EventConsumer:
    """The test service's consumer in one lane: a batch's records share its transactions."""
    return EventConsumer(
        name, service.db, handlers, kafka=kafka, settings=settings.model_copy(update={"consumer_lanes": 1})
    )


async def test_a_batch_shares_one_transaction_and_keeps_the_partition_order(
    service: ServiceRuntime,
    behaviour: Any,
    kafka: KafkaSettings,
    definition: ServiceDefinition,
    service_settings: ServiceSettings,
    ledgerlet: Any,
) -> None:
    # One lane: the records share the transactions.
    consumer = _one_lane(ledgerlet.name, service, definition.handlers, kafka, service_settings)
    events = [ledgerlet.created(uuid.uuid4(), f"org-{i:02d}") for i in range(6)]
    # In the partition's order (as_record gives each record the next offset).
    first = [as_record(e) for e in events[:3]]
    bad = as_record(b"not json")
    rest = [as_record(e) for e in events[3:]]
    seen = as_record(events[0])  # the first event again, in the batch
    outcomes = await consumer.handle_batch([*first, bad, *rest, seen])

    assert outcomes == ["handled"] * 3 + ["dead_lettered"] + ["handled"] * 3 + ["duplicate"]
    assert await ledgerlet.orgs(service.db) == [f"org-{i:02d}" for i in range(6)]
    # One transaction for the batchable records: the malformed one, refused as it was read, does
    # not split it; its dead letter is written in a transaction of its own.
    handled = await service.db.pool.fetch("SELECT DISTINCT xmin::text AS x FROM inbox WHERE outcome = 'handled'")
    refused = await service.db.pool.fetch("SELECT DISTINCT xmin::text AS x FROM inbox WHERE outcome = 'dead_lettered'")
    assert len(handled) == 1 and len(refused) == 1 and handled != refused
    assert behaviour.calls == 6
    # Every emitted event is in the outbox once (the relay may already have sent some).
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=6)
    assert sorted(json.loads(r.value)["causationid"] for r in out) == sorted(str(e.id) for e in events)


async def test_one_bad_event_in_a_batch_is_dead_lettered_and_the_rest_committed(
    service: ServiceRuntime, behaviour: Any, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    assert service.consumer is not None
    behaviour.poison = {"org-2"}
    events = [ledgerlet.created(uuid.uuid4(), f"org-{i}") for i in range(5)]
    records = [as_record(e) for e in events]
    outcomes = await service.consumer.handle_batch(records)

    assert outcomes == ["handled", "handled", "dead_lettered", "handled", "handled"]
    assert await ledgerlet.orgs(service.db) == ["org-0", "org-1", "org-3", "org-4"]
    letters = await eventually(lambda: ledgerlet.letters(kafka, 1))
    assert [(x.event_id, x.error_kind) for x in letters] == [(str(events[2].id), "rejected")]
    # The batch was rolled back and each event handled alone: the good ones are not twice in the outbox.
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=4)
    assert len(out) == 4
    # Handled again (a redelivery of the whole batch) changes nothing: the refused one is refused
    # again, and recognised as dead-lettered already (by its place in the log): no second letter.
    again = await service.consumer.handle_batch(records)
    assert again == ["duplicate", "duplicate", "dead_lettered", "duplicate", "duplicate"]
    assert await service.db.pool.fetchval("SELECT count(*) FROM dead_letters") == 1
    assert len(await read_dead_letters(kafka, ledgerlet.name, timeout_s=0.5)) == 1


async def test_a_backlog_is_consumed_in_batches_through_kafka(
    definition: ServiceDefinition,
    service_settings: ServiceSettings,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    ledgerlet: Any,
) -> None:
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(ledgerlet.name)), 1, 1, {})])
    events = [ledgerlet.created(uuid.uuid4(), f"backlog-{i:03d}") for i in range(120)]
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
    service: ServiceRuntime, behaviour: Any, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    assert service.consumer is not None
    lanes = service.settings.consumer_lanes
    assert lanes > 1
    behaviour.poison = {"org-07"}
    events = [ledgerlet.created(uuid.uuid4(), f"org-{i:02d}") for i in range(24)]
    records = [as_record(e) for e in events]
    outcomes = await service.consumer.handle_batch([*records, as_record(events[3])])

    # Outcomes in the batch's order; the refused one dead-lettered, the redelivered one a duplicate.
    assert outcomes == ["dead_lettered" if i == 7 else "handled" for i in range(24)] + ["duplicate"]
    assert await ledgerlet.orgs(service.db) == [f"org-{i:02d}" for i in range(24) if i != 7]
    # One transaction per lane, but the refused one's: its lane fell back to one per record.
    lane_of = [zlib.crc32(r.key or b"") % lanes for r in records]
    poisoned = [i for i in range(24) if lane_of[i] == lane_of[7] and i != 7]
    commits = await service.db.pool.fetchval("SELECT count(DISTINCT handled_at) FROM inbox WHERE outcome = 'handled'")
    assert commits == len(set(lane_of)) - 1 + len(poisoned)


async def test_a_batched_handler_gets_its_events_together_however_the_fetch_interleaved_topics(
    service: ServiceRuntime, service_settings: ServiceSettings, kafka: KafkaSettings, ledgerlet: Any
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

    handlers = {"OrganizationCreated": BatchedHandler(created), "ScheduleRunCompleted": run_completed}
    consumer = _one_lane(ledgerlet.name, service, handlers, kafka, service_settings)
    upstream = [
        dataclasses.replace(as_record(ledgerlet.created(uuid.uuid4(), f"org-{i}")), partition=i % 2) for i in range(6)
    ]
    runs = [example_event("ScheduleRunCompleted", run_id=str(uuid.uuid4())) for _ in range(3)]
    analytics = [as_record(e, topic=ANALYTICS) for e in runs]
    batch = [upstream[0], analytics[0], upstream[1], upstream[2], analytics[1], upstream[3], upstream[4], analytics[2]]
    batch.append(upstream[5])

    assert await consumer.handle_batch(batch) == ["handled"] * len(batch)
    assert groups == [["org-0", "org-2", "org-4", "org-1", "org-3", "org-5"]]  # partition 0's, then 1's
    assert completed == [str(e.data["run_id"]) for e in runs]
    assert await ledgerlet.orgs(service.db) == [f"org-{i}" for i in range(6)]


async def test_an_event_the_service_does_not_handle_leaves_the_transaction_whole(
    service: ServiceRuntime,
    kafka: KafkaSettings,
    definition: ServiceDefinition,
    service_settings: ServiceSettings,
    ledgerlet: Any,
) -> None:
    """A type of the contract with no handler here is ignored where it stands: the records around
    it still share one transaction (a malformed record, dead-lettered, does split it: above)."""
    consumer = _one_lane(ledgerlet.name, service, definition.handlers, kafka, service_settings)
    events = [ledgerlet.created(uuid.uuid4(), f"org-{i}") for i in range(4)]
    ignored = as_record(example_event("ScheduleRunCompleted", run_id=str(uuid.uuid4())), topic=ANALYTICS)
    batch = [as_record(events[0]), as_record(events[1]), ignored, as_record(events[2]), as_record(events[3])]

    assert await consumer.handle_batch(batch) == ["handled", "handled", "ignored", "handled", "handled"]
    assert await ledgerlet.orgs(service.db) == [f"org-{i}" for i in range(4)]
    stamps = await service.db.pool.fetch("SELECT DISTINCT handled_at FROM inbox WHERE outcome = 'handled'")
    assert len(stamps) == 1


async def test_an_event_on_two_topics_read_is_handled_from_its_primary_one_only(
    service: ServiceRuntime, kafka: KafkaSettings, service_settings: ServiceSettings
) -> None:
    """PostPublished travels on publisher.events and analytics.events with one id: a service
    reading both handles it from publisher.events (its primary topic) and ignores the copy on
    analytics.events, whichever comes first; a handled type on a topic it does not travel on is
    still refused."""
    handled: list[tuple[str, str]] = []

    async def post_published(ctx: EventContext, data: Any) -> None:
        handled.append((ctx.envelope.type, str(ctx.envelope.id)))

    consumer = EventConsumer(
        "two-topics",
        service.db,
        {"PostPublished": post_published},
        kafka=kafka,
        settings=service_settings,
        consumes=[PUBLISHER, ANALYTICS],
    )
    event = example_event("PostPublished", run_id=str(uuid.uuid4()))
    copy, original = as_record(event, topic=ANALYTICS), as_record(event, topic=PUBLISHER)
    assert await consumer.handle_batch([copy, original]) == ["ignored", "handled"]
    assert handled == [("PostPublished", str(event.id))]
    counted = {"service": "two-topics", "event_type": "PostPublished"}
    assert REGISTRY.get_sample_value("hopcast_messages_total", {**counted, "outcome": "ignored"}) == 1
    assert REGISTRY.get_sample_value("hopcast_messages_total", {**counted, "outcome": "handled"}) == 1
    forged = example_event("PostPublished", run_id=str(uuid.uuid4()))
    assert await consumer.handle_record(as_record(forged, topic=UPSTREAM)) == "dead_lettered"
    kinds = await service.db.pool.fetch("SELECT error_kind FROM dead_letters WHERE consumer = 'two-topics'")
    assert [row["error_kind"] for row in kinds] == ["wrong_topic"]
    # Without the topics it reads, a consumer takes either copy (the inbox makes the second a duplicate).
    everything = EventConsumer(
        "either-copy", service.db, {"PostPublished": post_published}, kafka=kafka, settings=service_settings
    )
    again = example_event("PostPublished", run_id=str(uuid.uuid4()))
    pair = [as_record(again, topic=ANALYTICS), as_record(again, topic=PUBLISHER)]
    assert await everything.handle_batch(pair) == ["handled", "duplicate"]
