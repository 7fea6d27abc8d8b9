"""The transactional outbox: events are rows written in the business transaction; a relay
publishes them to Kafka and deletes them.

Guarantees: an event is published if and only if its transaction committed (never lost,
possibly published twice after a crash between the Kafka ack and the delete; consumers'
inboxes absorb that). One relay at a time per database holds an advisory lock, and rows go
out in id order through an idempotent producer, so one key's events keep their order while
the broker accepts them. A row Kafka rejects for good is parked (kept, reported), not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pydantic_core
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    TopicAuthorizationFailedError,
)
from opentelemetry.trace import SpanKind
from pydantic import BaseModel

from hopcast_shared import metrics
from hopcast_shared.contract import event_json, new_event_ids, topics_for, type_name_of, utc_text
from hopcast_shared.db import Conn, Database
from hopcast_shared.settings import KafkaSettings, TelemetrySettings
from hopcast_shared.telemetry import TRACE_HEADERS, extract_context, messaging_attributes, tracer

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"
NOTIFY_CHANNEL = "hopcast_outbox"
# One relay at a time per database keeps per-key order across replicas.
_RELAY_LOCK_KEY = 0x686F7063_6F757478  # "hopcoutx"
_PERMANENT_ERRORS = (MessageSizeTooLargeError, InvalidTopicError, TopicAuthorizationFailedError)


@dataclass(frozen=True)
class OutboxRow:
    """One message as the outbox stores it; made where the trace context is the right one."""

    event_id: Any
    event_type: str
    topic: str
    key: bytes | None
    payload: bytes
    headers: list[tuple[str, str]]


_TOPICS: dict[tuple[str, str], list[str]] = {}


def event_topics(kafka: KafkaSettings, type_name: str) -> list[str]:
    """The topics (with the prefix) an event type goes to, worked out once per type."""
    key = (kafka.topic_prefix, type_name)
    topics = _TOPICS.get(key)
    if topics is None:
        topics = _TOPICS[key] = [kafka.topic(name) for name in topics_for(type_name)]
    return topics


def event_rows(
    kafka: KafkaSettings,
    events: Sequence[BaseModel],
    *,
    organization_id: uuid.UUID | str,
    source: str,
    correlation_id: str | None,
    causation_id: str | None,
    trace: Sequence[tuple[str, str]],
    topics: Sequence[str] | None = None,
) -> list[OutboxRow]:
    """Outbox rows of new events about one organization (their key): fresh ids, the current
    time, the trace context `trace`, each to its type's topics unless `topics` (unprefixed) are
    given, with the trace context, the time and
    the ids worked out once and each payload serialized once (`event_json`). With
    `write_outbox`, the one way every producer (handlers, the scheduler's tick, the publisher's
    loop, dead letters) emits."""
    rows: list[OutboxRow] = []
    key = str(organization_id).encode()
    time = utc_text(datetime.now(UTC))
    for data, event_id in zip(events, new_event_ids(len(events)), strict=True):
        type_name = type_name_of(data)
        payload = event_json(
            data,
            event_id=event_id,
            organization_id=organization_id,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
            time=time,
        )
        # Structured mode and nothing else: a `ce_` header would tell standard CloudEvents
        # clients the message is in binary mode (`contract/kafka_binding.py`).
        headers = [*trace, ("content-type", CONTENT_TYPE)]
        names = event_topics(kafka, type_name) if topics is None else [kafka.topic(name) for name in topics]
        rows.extend(OutboxRow(event_id, type_name, topic, key, payload, headers) for topic in names)
    return rows


# Headers go in as JSON text: a list of pairs inside an array parameter would be read as
# a multi-dimensional array.
_INSERT = """
INSERT INTO outbox (event_id, event_type, topic, key, payload, headers)
SELECT e, t, tp, k, p, h::jsonb
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::text[]) AS u(e, t, tp, k, p, h)
"""


async def write_outbox(conn: Conn, rows: Sequence[OutboxRow]) -> None:
    """Write rows in the caller's transaction, in one statement."""
    if not rows:
        return
    await conn.execute(
        _INSERT,
        [r.event_id for r in rows],
        [r.event_type for r in rows],
        [r.topic for r in rows],
        [r.key for r in rows],
        [r.payload for r in rows],
        [pydantic_core.to_json(r.headers).decode() for r in rows],
    )


ProducerFactory = Callable[[], Awaitable[AIOKafkaProducer]]


class OutboxRelay:
    """Publishes the outbox in batches; woken by LISTEN/NOTIFY, with a polling fallback."""

    def __init__(
        self,
        db: Database,
        producer_factory: ProducerFactory,
        *,
        service: str,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        max_backoff_s: float = 30.0,
        producer_spans: bool | None = None,
    ) -> None:
        self._db = db
        # A PRODUCER span per row costs more than the send itself; without an exporter
        # (OTEL_EXPORTER_OTLP_ENDPOINT unset) nobody sees it, and the stored trace context goes
        # out as it is: the consumer's span is a child of the handler that wrote the row.
        self._producer_spans = (
            producer_spans if producer_spans is not None else bool(TelemetrySettings().otel_exporter_otlp_endpoint)
        )
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._service = service
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._failures = 0
        self.published = 0

    async def start(self) -> None:
        self._producer = await self._producer_factory()
        self._listener = await asyncpg.connect(self._db.url)
        await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._service}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.publish_batch()
            except Exception:
                self._failures += 1
                log.exception("outbox relay failed; retrying", extra={"service": self._service})
                sent = 0
            if self._failures:
                await asyncio.sleep(min(self._max_backoff_s, 0.1 * 2 ** min(self._failures, 10)))
                continue
            if sent >= self._batch_size:
                continue  # more is waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)

    async def publish_batch(self) -> int:
        """Publish one batch; returns how many rows Kafka acknowledged (0 if another relay holds the lock)."""
        if self._producer is None:
            self._producer = await self._producer_factory()
        async with self._db.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK_KEY):
                return 0
            rows = await conn.fetch(
                """
                SELECT id, event_id, event_type, topic, key, payload, headers FROM outbox
                WHERE parked_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """,
                self._batch_size,
            )
            if not rows:
                self._failures = 0
                return 0
            results = await self._send(rows)
            delivered: list[int] = []
            parked: list[tuple[int, str]] = []
            failed: list[tuple[int, str]] = []
            for row, result in zip(rows, results, strict=True):
                if not isinstance(result, BaseException):
                    delivered.append(row["id"])
                elif isinstance(result, _PERMANENT_ERRORS):
                    parked.append((row["id"], _describe(result)))
                else:
                    failed.append((row["id"], _describe(result)))
            if delivered:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", delivered)
            if parked:
                await conn.executemany(
                    "UPDATE outbox SET parked_at = now(), attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    parked,
                )
                for row_id, error in parked:
                    log.error("outbox row %s parked: %s", row_id, error, extra={"service": self._service})
                metrics.OUTBOX_PARKED.labels(self._service).inc(len(parked))
            if failed:
                await conn.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1", failed
                )
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(delivered))
        self.published += len(delivered)
        if failed:
            self._failures += 1
            log.warning(
                "outbox: %d of %d rows not acknowledged (%s); will retry",
                len(failed),
                len(rows),
                failed[0][1],
                extra={"service": self._service},
            )
            if any(isinstance(r, OutOfOrderSequenceNumber) for r in results):
                # aio-libs/aiokafka#1017: the idempotent producer can stay stuck after a broker
                # restart; a fresh producer gets a fresh producer id and sequence.
                await self._recreate_producer()
        else:
            self._failures = 0
        return len(delivered)

    async def _send(self, rows: Sequence[asyncpg.Record]) -> list[object]:
        """Hand every row to the producer, then collect the acks in order (an exception for a
        row Kafka refused). The producer batches per partition while we go on handing rows."""
        assert self._producer is not None
        producer = self._producer
        futures: list[asyncio.Future[Any] | BaseException] = []
        for row in rows:
            try:
                headers = _publish_headers(row) if self._producer_spans else _stored_headers(row)
                futures.append(await producer.send(row["topic"], row["payload"], key=row["key"], headers=headers))
            except KafkaError as exc:
                futures.append(exc)
        # Awaiting the futures one by one, not gather(): no task per row, and by the time the
        # first is done most of the others are too.
        return [await _settle(f) for f in futures]

    async def _recreate_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            try:
                await old.stop()
            except Exception:
                log.debug("stopping the old producer failed", exc_info=True)
        self._producer = await self._producer_factory()

    async def backlog(self) -> tuple[int, float]:
        """(rows waiting, age in seconds of the oldest), for metrics and readiness."""
        row = await self._db.pool.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE parked_at IS NULL"
        )
        assert row is not None
        oldest = row["oldest"]
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest.timestamp())
        return int(row["n"]), age


def _stored_headers(row: asyncpg.Record) -> list[tuple[str, bytes]]:
    return [(k, v.encode()) for k, v in row["headers"]]


def _publish_headers(row: asyncpg.Record) -> list[tuple[str, bytes]]:
    """The row's headers, its trace context replaced by that of a PRODUCER span that is a child
    of the stored one: the publish span becomes the consumer's parent.

    The span is started and ended without becoming the current span, and its context written
    as W3C trace context directly (TRACE_HEADERS): attaching it and running the propagators
    cost more than the span itself, once per row on the relay's hot path.
    """
    stored: list[list[str]] = row["headers"]
    parent = extract_context((k, v.encode("latin-1")) for k, v in stored if k in TRACE_HEADERS)
    span = tracer.start_span(
        f"send {row['topic']}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            **messaging_attributes("send", row["topic"], key=row["key"], message_id=str(row["event_id"])),
            "messaging.message.type": row["event_type"],
        },
    )
    span.end()
    headers = [(k, v.encode()) for k, v in stored if k not in TRACE_HEADERS]
    context = span.get_span_context()
    if context.is_valid:
        headers.append(
            ("traceparent", f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}".encode())
        )
        if context.trace_state:
            headers.append(("tracestate", context.trace_state.to_header().encode()))
    return headers


async def _settle(item: asyncio.Future[Any] | BaseException) -> object:
    if isinstance(item, BaseException):
        return item
    try:
        return await item
    except Exception as exc:
        return exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
