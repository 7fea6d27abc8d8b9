"""The hostile-record suite's test service and accounting (shared/tests/integration/hostile/):
the kernel's consumer wired as ServiceRuntime wires a service's, with handlers that record every
event they apply in a table, so "applied" is a row and not a guess; the dead letters read as they
arrive; a run of records produced in one go and settled (each applied or dead-lettered), and
`hostile_then_good`: one hostile record, then a good event with the same key that must flow.

The test service, "hostile", handles every type of the contract (half of its handlers batched).
An event whose id is a multiple of FLAKY_EVERY fails its first call, and every event of
FAILING_ORG fails every call, so that retries happen and their bound is tested.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import EVENT_TYPES
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.handling import BatchedHandler, EventContext, Handler
from hopcast_shared.kafka import connection_kwargs, make_broker, make_producer
from hopcast_shared.migrations import load_migrations
from hopcast_shared.outbox import OutboxRelay
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.subscription import subscribe
from hopcast_shared.testing import eventually, topic_partitions
from hopcast_shared.topics import UPSTREAM, TopicSpec, dlq_topic, ensure_topics

SERVICE = "hostile"
MAX_ATTEMPTS = 3
WITHIN_S = 10.0  # every record applied or dead-lettered this long after it was produced
STALLED_S = 20.0  # no record got an outcome for this long: the consumer has stopped
APPLIED_SQL = """
CREATE TABLE applied (
    event_id        uuid        NOT NULL,
    organization_id uuid        NOT NULL,
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

# Organizations of the good events (their Kafka keys), and others' for hostile envelopes.
GOOD_ORGS = [uuid.uuid5(uuid.NAMESPACE_URL, f"hopcast:hostile:good:{i}") for i in range(12)]
STRANGER_ORGS = [uuid.uuid5(uuid.NAMESPACE_URL, f"hopcast:hostile:stranger:{i}") for i in range(4)]
FAILING_ORG = STRANGER_ORGS[0]
FLAKY_EVERY = 40
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class CountingConsumer(EventConsumer):
    """The kernel's consumer, counting how often each record is handed to it: a record the
    consumer did not finish is handed over again (read again from its committed offset)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deliveries: Counter[tuple[str, int, int]] = Counter()

    async def handle_round(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[str]:
        # What the fair feed (and handle_batch) hand over: one round of records at a time.
        self.deliveries.update((r.topic, r.partition, r.offset) for r in records)
        return await super().handle_round(records)

    async def handle_record(self, record: ConsumerRecord[Any, Any]) -> str:
        self.deliveries[(record.topic, record.partition, record.offset)] += 1
        return await super().handle_record(record)


def recording_handlers(calls: Counter[str]) -> dict[str, Handler]:
    """A handler for every type of the contract: each records the event in `applied` (its data as
    jsonb, as a service keeps what it is told) and counts its calls per event id. So that retries
    happen (and their bound is tested), an event whose id is a multiple of FLAKY_EVERY fails its
    first call, and every event of FAILING_ORG fails every call (dead-lettered as `failed`)."""

    async def insert(items: Sequence[tuple[EventContext, Any]]) -> None:
        rows = []
        for ctx, data in items:
            event_id = str(ctx.envelope.id)
            calls[event_id] += 1
            if ctx.envelope.organizationid == FAILING_ORG:
                raise RuntimeError("induced failure: this organization's events always fail")
            if ctx.envelope.id.int % FLAKY_EVERY == 0 and calls[event_id] == 1:
                raise RuntimeError("induced failure: an event's first call")
            rows.append((ctx.envelope.id, ctx.envelope.organizationid, ctx.envelope.type, data.model_dump(mode="json")))
        await items[0][0].conn.executemany(
            "INSERT INTO applied (event_id, organization_id, event_type, data) VALUES ($1, $2, $3, $4)", rows
        )

    async def apply_one(ctx: EventContext, data: Any) -> None:
        await insert([(ctx, data)])

    apply_many = BatchedHandler(insert)
    return {name: apply_many if i % 2 else apply_one for i, name in enumerate(EVENT_TYPES)}


@dataclass
class Running:
    """The test service running: its consumer, database and the topics it reads and writes."""

    kafka: KafkaSettings
    db: Database
    consumer: CountingConsumer
    calls: Counter[str]
    settings: ServiceSettings

    @property
    def topic(self) -> str:
        return self.kafka.topic(UPSTREAM)

    async def applied(self) -> dict[str, list[datetime]]:
        """event id -> when it was applied (one time per application)."""
        found: dict[str, list[datetime]] = {}
        for row in await self.db.pool.fetch("SELECT event_id, applied_at FROM applied"):
            found.setdefault(str(row["event_id"]), []).append(row["applied_at"])
        return found


@asynccontextmanager
async def running_service(kafka: KafkaSettings, database_url: str, migrations_dir: Path) -> AsyncIterator[Running]:
    """The consumer wired as ServiceRuntime wires a service's: its database migrated, `subscribe`
    on the broker of `make_broker` with batches and lanes, and the outbox relay (dead letters go
    out through it)."""
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    (migrations_dir / "0001_applied.sql").write_text(APPLIED_SQL)
    service_settings = ServiceSettings(
        name=SERVICE,
        database_url=database_url,
        http_port=18089,
        handler_max_attempts=MAX_ATTEMPTS,
        handler_backoff_initial_s=0.01,
        handler_backoff_max_s=0.05,
        consumer_batch_max=200,
        consumer_lanes=4,
        outbox_poll_interval_s=0.2,
    )
    assert service_settings.consumer_batch_max > 1 and service_settings.consumer_lanes > 1
    db = await Database.open(database_url, load_migrations(SERVICE, migrations_dir))
    calls: Counter[str] = Counter()
    consumer = CountingConsumer(SERVICE, db, recording_handlers(calls), kafka=kafka, settings=service_settings)
    broker = make_broker(kafka, SERVICE)
    feed = subscribe(
        broker,
        consumer,
        [UPSTREAM],
        kafka=kafka,
        batch_max=service_settings.consumer_batch_max,
        batch_timeout_ms=service_settings.consumer_batch_timeout_ms,
        window_max_records=service_settings.consumer_window_max_records,
        window_max_bytes=service_settings.consumer_window_max_bytes,
        fetch_min_bytes=service_settings.consumer_fetch_min_bytes,
        fetch_max_wait_ms=service_settings.consumer_fetch_max_wait_ms,
    )

    async def relay_producer() -> AIOKafkaProducer:
        producer = make_producer(kafka, f"{SERVICE}-outbox")
        await producer.start()
        return producer

    relay = OutboxRelay(db, relay_producer, service=SERVICE, poll_interval_s=service_settings.outbox_poll_interval_s)
    await relay.start()
    try:
        await broker.start()
        try:
            running = Running(kafka, db, consumer, calls, service_settings)
            await warm_up(running)
            yield running
        finally:
            if feed is not None:  # as ServiceRuntime stops it: no round left running on a closed pool
                await feed.stop()
            await broker.stop()
    finally:
        await relay.stop()
        await db.close()


async def warm_up(service: Running) -> None:
    """Wait until the consumer has joined its group and handles events, so that the times measured
    after are the consumer's and not the group join's."""
    org = uuid.uuid4()
    event = example_event("OrganizationCreated", organization_id=org, time=datetime.now(UTC))
    producer = make_producer(service.kafka, "hostile-warm-up")
    await producer.start()
    try:
        await producer.send_and_wait(service.topic, event.to_json(), key=str(org).encode())
    finally:
        await producer.stop()
    await eventually(lambda: service.db.pool.fetchval("SELECT count(*) FROM applied WHERE event_id = $1", event.id))


class DeadLetters:
    """The dead letters on `<group>.dlq`, read as they arrive, by their source's (partition, offset)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
        self.by_source: dict[tuple[int, int], dict[str, Any]] = {}
        self.seen_at: dict[tuple[int, int], float] = {}
        self.sizes: dict[tuple[int, int], int] = {}
        self.raw: dict[tuple[int, int], bytes] = {}

    async def __aenter__(self) -> DeadLetters:
        await self._consumer.start()
        topic = self._kafka.topic(dlq_topic(SERVICE))
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(self._consumer, topic))]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        upstream = self._kafka.topic(UPSTREAM)
        for records in (await self._consumer.getmany(timeout_ms=timeout_ms)).values():
            for record in records:
                letter = json.loads(record.value)
                source = letter["source"]
                if source["topic"] != upstream:
                    continue
                at = (source["partition"], source["offset"])
                self.by_source[at] = letter
                self.seen_at.setdefault(at, time.time())
                self.sizes[at] = len(record.value)
                self.raw[at] = record.value

    def dead_lettered_at(self, at: tuple[int, int]) -> float:
        stamp = self.by_source[at].get("dead_lettered_at")
        if isinstance(stamp, str):
            return datetime.fromisoformat(stamp).timestamp()
        return self.seen_at[at]


# Marks a JSON token written as is: numbers Python's json cannot write, nesting it cannot reach.
# Made anew in each process: hypothesis draws text from the string constants of the code it
# tests, so a fixed marker came back inside generated strings, and their text was read as a token.
_RAW_NONCE = secrets.token_hex(8)
_RAW = f"\x01raw{_RAW_NONCE}\x01"
_RAW_TOKEN = re.compile(rb'"\\u0001raw' + _RAW_NONCE.encode() + rb'\\u0001([^"]*)"')


def raw_json(token: str) -> str:
    return _RAW + base64.b64encode(token.encode()).decode()


def encode(value: Any, *, ascii_only: bool) -> bytes:
    """JSON bytes of `value`: with \\u escapes, or UTF-8 with lone surrogates as they are (then
    not UTF-8 at all); `raw_json` tokens spliced in."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass")
    return _RAW_TOKEN.sub(lambda m: base64.b64decode(m.group(1)), data)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth if depth % 2 else '{"a":' * depth + leaf + "}" * depth


def envelope_value(type_name: str, org: uuid.UUID, event_id: uuid.UUID) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(example_event(type_name, organization_id=org, event_id=event_id).to_json())
    return value


@dataclass
class Sent:
    label: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes | None]]
    event_id: uuid.UUID
    good: bool = False
    partition: int = -1
    offset: int = -1
    produced_at: float = 0.0
    ids: set[str] = field(default_factory=set)

    def describe(self, deliveries: int) -> dict[str, Any]:
        value = self.value
        return {
            "label": self.label,
            "at": [self.partition, self.offset],
            "deliveries": deliveries,
            "key": repr(self.key)[:80],
            "headers": repr(self.headers)[:200],
            "value": None if value is None else f"{len(value)} bytes: {value[:300]!r}",
        }


def candidate_ids(record: Sent) -> set[str]:
    """The ids under which a handler would have recorded the record: the event id it was given,
    and whatever its value or a CloudEvents binary-mode header names."""
    ids = {str(record.event_id)}
    texts: list[Any] = []
    try:
        document = json.loads(record.value or b"")
        if isinstance(document, dict):
            texts.append(document.get("id"))
    except (ValueError, RecursionError):
        pass
    texts += [v.decode("utf-8", "replace") for k, v in record.headers if k == "ce_id" and v is not None]
    for text in texts:
        with suppress(ValueError):
            ids.add(str(uuid.UUID(str(text))))
    return ids


async def produce(kafka: KafkaSettings, run: Sequence[Sent], *, explicit_partitions: bool = True) -> None:
    """Send the whole run in one go; sets each record's partition, offset and produce time."""
    producer = make_producer(kafka, "hostile-upstream")
    await producer.start()
    try:
        futures = [
            await producer.send(
                kafka.topic(UPSTREAM),
                r.value,
                key=r.key,
                headers=r.headers,
                partition=r.partition if explicit_partitions else None,
            )
            for r in run
        ]
        for record, future in zip(run, futures, strict=True):
            metadata = await future
            record.partition, record.offset = metadata.partition, metadata.offset
            record.produced_at = metadata.timestamp / 1000
    finally:
        await producer.stop()


@dataclass
class Outcomes:
    """What became of each record: applied (event id -> times), dead-lettered (by position)."""

    applied: dict[str, list[datetime]]
    letters: DeadLetters

    def of(self, record: Sent) -> tuple[str, float] | None:
        """("applied" or "dead_lettered", when), or None while it is neither."""
        at = (record.partition, record.offset)
        if at in self.letters.by_source:
            return "dead_lettered", self.letters.dead_lettered_at(at)
        for event_id in record.ids:
            if event_id in self.applied:
                return "applied", self.applied[event_id][0].timestamp()
        return None


async def settle(service: Running, letters: DeadLetters, run: Sequence[Sent]) -> Outcomes:
    """Wait until every record is applied or dead-lettered. Past WITHIN_S (and a little) after the
    last one was produced, keep waiting only while records still get an outcome (at most
    STALLED_S without one): a slow machine then fails as "late", with how late, and only a
    consumer that stopped fails as "neither applied nor dead-lettered"."""
    deadline = max(r.produced_at for r in run) + WITHIN_S + 2.0
    settled, progress_at = -1, time.time()
    while True:
        await letters.poll()
        outcomes = Outcomes(await service.applied(), letters)
        now_settled = sum(outcomes.of(r) is not None for r in run)
        if now_settled > settled:
            settled, progress_at = now_settled, time.time()
        if settled == len(run) or (time.time() > deadline and time.time() - progress_at > STALLED_S):
            return outcomes
        await asyncio.sleep(0.1)


async def hostile_then_good(
    kafka: KafkaSettings,
    database_url: str,
    tmp_path: Path,
    value: bytes | None,
    *,
    org: uuid.UUID,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
    event_id: uuid.UUID | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Send `value` (keyed to `org` unless `key` is given), then a good event with the same key;
    the good event must be applied within WITHIN_S. Returns what became of the hostile record
    ("applied", "dead_lettered" or "neither") and its dead letter."""
    key = key if key is not None else str(org).encode()
    hostile = Sent("hostile", value, key, list(headers), event_id or uuid.uuid4())
    event = example_event("OrganizationCreated", organization_id=org, time=datetime.now(UTC))
    good = Sent("good", event.to_json(), key, [("traceparent", TRACEPARENT.encode())], event.id, good=True)
    run = [hostile, good]
    for record in run:
        record.ids = candidate_ids(record)
    async with running_service(kafka, database_url, tmp_path) as service, DeadLetters(kafka) as letters:
        await produce(kafka, run, explicit_partitions=False)  # the same key: the same partition
        assert hostile.partition == good.partition
        outcomes = await settle(service, letters, run)
        deliveries = service.consumer.deliveries[(service.topic, hostile.partition, hostile.offset)]
    handled = outcomes.of(good)
    assert handled is not None and handled[0] == "applied", (
        f"the good event behind the hostile record was not applied within {WITHIN_S} s "
        f"(the hostile record was delivered {deliveries} times)"
    )
    assert handled[1] - good.produced_at <= WITHIN_S
    fate = outcomes.of(hostile)
    assert deliveries <= MAX_ATTEMPTS
    return (fate[0] if fate else "neither"), letters.by_source.get((hostile.partition, hostile.offset))
