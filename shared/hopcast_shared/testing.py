"""Helpers for the services' tests on the real stack: wait for a condition, read a topic,
send events as an upstream producer would, count a handler's statements. (No fakes here: these
talk to real servers.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hopcast_shared.contract import Envelope
from hopcast_shared.db import Database
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, within: float = 30.0, interval: float = 0.1) -> T:
    """Wait until `check()` returns something truthy; fail with its last value when time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        last = await check()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {last!r}")
        await asyncio.sleep(interval)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, *, within: float = 10.0) -> set[int]:
    """The topic's partitions, waiting for its metadata (a topic just created may not have it yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        # The consumer's own metadata covers only its subscriptions: ask for all of it.
        cluster = await consumer._client.fetch_all_metadata()
        partitions: set[int] = cluster.partitions_for_topic(topic) or set()
        if partitions or loop.time() > deadline:
            return partitions
        await asyncio.sleep(0.1)


async def read_topic(
    kafka: KafkaSettings, topic: str, *, expect: int, within: float = 30.0, settle_s: float = 0.3
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning until `expect` records arrived (or time ran out), then
    read a little longer, so a test also sees records beyond those it expected."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = await topic_partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(records) < expect and loop.time() < deadline:
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(recs)
        for recs in (await consumer.getmany(timeout_ms=int(settle_s * 1000))).values():
            records.extend(recs)
    finally:
        await consumer.stop()
    return records


async def read_events(
    kafka: KafkaSettings, topic: str, *, expect: int, event_type: str | None = None, within: float = 30.0
) -> list[dict[str, Any]]:
    """The JSON envelopes on a topic (optionally of one type), read as a dashboard would."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal found
        records = await read_topic(kafka, topic, expect=expect, within=1.0, settle_s=0.2)
        found = [json.loads(r.value) for r in records]
        if event_type is not None:
            found = [e for e in found if e.get("type") == event_type]
        return len(found) >= expect

    with contextlib.suppress(AssertionError):  # the caller's assertion on the events says what is missing
        await eventually(enough, within=within, interval=0.2)
    return found


async def send_event(
    producer: AIOKafkaProducer, kafka: KafkaSettings, topic: str, event: Envelope, **headers: str
) -> None:
    """Publish an event as an upstream producer does: keyed by organization id."""
    await producer.send_and_wait(
        kafka.topic(topic),
        event.to_json(),
        key=str(event.organizationid).encode(),
        headers=[
            ("content-type", b"application/cloudevents+json"),
            *((k, v.encode()) for k, v in headers.items()),
        ],
    )


_offsets: dict[str, int] = {}


def as_record(
    event: Envelope | bytes, *, topic: str = "upstream.events", headers: list[tuple[str, bytes]] | None = None
) -> ConsumerRecord[bytes, bytes]:
    """A Kafka record carrying the event, as a consumer receives it (each with a new offset),
    keyed as a producer keeps to the contract keys it: by its `organizationid` (bytes are
    keyed so too when they are a JSON object naming one as a string, else not at all)."""
    value = event if isinstance(event, bytes) else event.to_json()
    key = _organization_key(event) if isinstance(event, bytes) else str(event.organizationid).encode()
    offset = _offsets[topic] = _offsets.get(topic, -1) + 1
    return ConsumerRecord(
        topic=topic,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value),
        headers=headers or [],
    )


def _organization_key(value: bytes) -> bytes | None:
    try:
        document = json.loads(value)
    except ValueError:
        return None
    org = document.get("organizationid") if isinstance(document, dict) else None
    return org.encode() if isinstance(org, str) else None


# What asyncpg sends once per connection to learn a type it has not seen yet: not a handler's.
_INTROSPECTION = ("typeinfo_tree", "'jit'")


class CountingDatabase(Database):
    """A Database (the same pool) that records the statements of each transaction it opens,
    asyncpg's own type introspection left out: each is one round trip (executemany pipelines
    its rows). Clear `transactions` before what is measured."""

    def __init__(self, db: Database) -> None:
        super().__init__(db.pool, db.url)
        self.transactions: list[list[str]] = []

    @property
    def statements(self) -> list[int]:
        """The number of statements of each transaction, in order."""
        return [len(queries) for queries in self.transactions]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        queries: list[str] = []
        self.transactions.append(queries)

        def logged(query: Any) -> None:  # called soon after each statement
            if not any(m in query.query for m in _INTROSPECTION):
                queries.append(query.query)

        async with self.pool.acquire() as conn, conn.transaction():
            conn.add_query_logger(logged)
            try:
                yield conn
            finally:
                conn.remove_query_logger(logged)


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended inside, kept in memory: from the process's SDK tracer provider (the
    tests' root conftest installs one)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "no SDK tracer provider (setup_tracing) in this process"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        exporter.shutdown()
