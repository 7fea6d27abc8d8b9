"""Where a Kafka message enters a service: parse, deduplicate, handle, or dead-letter.

For each record: the envelope and data are validated against the contract; an invalid
message is dead-lettered at once. A valid one of a type the service handles runs its
handler inside one database transaction that also records the event id in the inbox and
writes the events it emits to the outbox. Transient failures are retried with backoff,
then the event is dead-lettered; if even that cannot be written (the database is down),
the message is not acknowledged and Kafka delivers it again. The offset is committed only
after one of those transactions committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ValidationError

from hopcast_shared import metrics
from hopcast_shared.contract import EVENT_TYPES, ContractError, Envelope, new_event, parse_event, topics_for
from hopcast_shared.db import Conn, Database
from hopcast_shared.dlq import REPLAY_HEADER, DeadLetter, dead_letter_message
from hopcast_shared.inbox import DEAD_LETTERED, HANDLED, record_handled
from hopcast_shared.outbox import add_raw_to_outbox, add_to_outbox
from hopcast_shared.redact import redact_text
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.telemetry import extract_context, tracer
from hopcast_shared.topics import dlq_topic

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The event breaks a rule it always will (another tenant's id, an impossible state):
    dead-letter it now, retrying cannot help."""


# Failures of the infrastructure, not of the message: never dead-letter for these; retry,
# and if they persist leave the message unacknowledged so Kafka delivers it again.
_INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)
_PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentError,
    ValidationError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


@dataclass
class EventContext:
    """What a handler gets: the transaction's connection, the event, and a way to emit events."""

    conn: Conn
    envelope: Envelope
    service: str
    kafka: KafkaSettings
    emitted: list[Envelope] = field(default_factory=list)

    async def emit(
        self,
        data: BaseModel,
        *,
        organization_id: Any = None,
        correlation_id: str | None = None,
        topics: Sequence[str] | None = None,
    ) -> Envelope:
        """Write an event to the outbox in this transaction; it is caused by the event being handled."""
        event = new_event(
            data,
            organization_id=organization_id or self.envelope.organizationid,
            source=f"hopcast/{self.service}",
            correlation_id=correlation_id or self.envelope.correlationid,
            causation_id=str(self.envelope.id),
        )
        names = topics or topics_for(event.type)
        await add_to_outbox(self.conn, [(event, self.kafka.topic(name)) for name in names])
        self.emitted.append(event)
        return event


Handler = Callable[[EventContext, Any], Awaitable[None]]


class EventConsumer:
    """Runs a service's handlers over Kafka records with the inbox, the outbox and the DLQ."""

    def __init__(
        self,
        service: str,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        kafka: KafkaSettings,
        settings: ServiceSettings,
    ) -> None:
        self.service = service
        self.group_id = service
        self._db = db
        self._handlers = dict(handlers)
        self._kafka = kafka
        self._settings = settings

    @property
    def handled_types(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def handle_record(self, record: ConsumerRecord[Any, Any]) -> str:
        """Handle one record; returns the outcome. Raises only when the database is unreachable."""
        parent = extract_context(record.headers)
        with tracer.start_as_current_span(
            f"{record.topic} process",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.consumer.group.name": self.group_id,
                "messaging.kafka.message.offset": record.offset,
            },
        ) as span:
            outcome, event_type = await self._handle(record)
            span.set_attribute("messaging.message.type", event_type or "")
            span.set_attribute("hopcast.outcome", outcome)
        metrics.MESSAGES.labels(self.service, event_type or "?", outcome).inc()
        return outcome

    async def _handle(self, record: ConsumerRecord[Any, Any]) -> tuple[str, str | None]:
        try:
            envelope, data = parse_event(record.value or b"", only=self.handled_types)
        except ContractError as exc:
            await self._dead_letter(record, exc.event_id, exc.event_type, exc.kind, str(exc), attempts=0)
            return "dead_lettered", exc.event_type
        handler = self._handlers.get(envelope.type)
        if handler is None:
            if envelope.type not in EVENT_TYPES:
                # Not in the contract (a newer version, a typo): keep it, replayable after an upgrade.
                error = f"event type {envelope.type!r} is not in the contract"
                await self._dead_letter(record, str(envelope.id), envelope.type, "unknown_type", error, attempts=0)
                return "dead_lettered", envelope.type
            return "ignored", envelope.type

        attempt = 0
        delay = self._settings.handler_backoff_initial_s
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                async with self._db.transaction() as conn:
                    fresh = await record_handled(
                        conn,
                        consumer=self.group_id,
                        message_id=str(envelope.id),
                        event_type=envelope.type,
                        outcome=HANDLED,
                        revive_dead_letter=_replayed_from(record) is not None,
                    )
                    if not fresh:
                        return "duplicate", envelope.type
                    await handler(EventContext(conn, envelope, self.service, self._kafka), data)
                metrics.HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)
                return "handled", envelope.type
            except Exception as exc:
                if _is_permanent(exc):
                    await self._dead_letter(
                        record, str(envelope.id), envelope.type, "rejected", _describe(exc), attempts=attempt
                    )
                    return "dead_lettered", envelope.type
                infrastructure = isinstance(exc, _INFRASTRUCTURE_ERRORS)
                log.warning(
                    "handling %s %s failed (attempt %d): %s",
                    envelope.type,
                    envelope.id,
                    attempt,
                    _describe(exc),
                    extra={"service": self.service, "event_id": str(envelope.id)},
                )
                if attempt >= self._settings.handler_max_attempts:
                    if infrastructure:
                        raise  # not the message's fault: leave it unacknowledged
                    await self._dead_letter(
                        record, str(envelope.id), envelope.type, "failed", _describe(exc), attempts=attempt
                    )
                    return "dead_lettered", envelope.type
                metrics.MESSAGES.labels(self.service, envelope.type, "retried").inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.handler_backoff_max_s)

    async def _dead_letter(
        self,
        record: ConsumerRecord[Any, Any],
        event_id: str | None,
        event_type: str | None,
        kind: str,
        error: str,
        *,
        attempts: int,
    ) -> None:
        """Write the dead letter to the outbox and the message to the inbox, in one transaction.

        A message without a readable id is keyed by its position in the log, so a redelivery
        of it is recognised too.
        """
        message_id = event_id or f"kafka:{record.topic}:{record.partition}:{record.offset}"
        replay = _replayed_from(record)
        if replay is not None:
            # A replay that fails again is a new dead letter; a redelivery of it is not.
            message_id = f"{message_id}:replay:{replay}"
        letter = DeadLetter.from_record(
            record,
            consumer=self.group_id,
            event_id=event_id,
            event_type=event_type,
            kind=kind,
            error=redact_text(error),
            attempts=attempts,
        )
        key, payload, headers = dead_letter_message(letter, record)
        async with self._db.transaction() as conn:
            fresh = await record_handled(
                conn,
                consumer=self.group_id,
                message_id=message_id,
                event_type=event_type,
                outcome=DEAD_LETTERED,
            )
            if fresh:
                await add_raw_to_outbox(
                    conn,
                    event_id=letter.dead_letter_id,
                    event_type=f"DeadLetter:{event_type or kind}",
                    topic=self._kafka.topic(dlq_topic(self.group_id)),
                    key=key,
                    payload=payload,
                    headers=headers,
                )
        log.error(
            "dead-lettered %s %s: %s",
            event_type or "message",
            event_id or message_id,
            letter.error,
            extra={"service": self.service, "event_id": event_id},
        )


def _is_permanent(exc: BaseException) -> bool:
    # A unique violation is a race with a concurrent transaction: a retry sees its row.
    return isinstance(exc, _PERMANENT_ERRORS) and not isinstance(exc, asyncpg.UniqueViolationError)


def _replayed_from(record: ConsumerRecord[Any, Any]) -> str | None:
    for key, value in record.headers or ():
        if key == REPLAY_HEADER:
            return bytes(value).decode("ascii", "replace")
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # pydantic's text includes the input values; keep only where and what.
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    topics: Sequence[str],
    *,
    kafka: KafkaSettings,
    workers_per_topic: int = 1,
) -> None:
    """Register the FastStream subscriber(s) of the consumer.

    NACK_ON_ERROR: the offset is committed after `handle_record` returns (its transaction
    has committed); if it raises, the consumer seeks back and the message comes again.
    """
    # One consumer for all topics (one group join); with more workers, one per topic, since
    # FastStream's per-partition concurrency takes a single topic.
    groups = [list(topics)] if workers_per_topic == 1 else [[name] for name in topics]
    for names in groups:
        subscriber = broker.subscriber(
            *(kafka.topic(name) for name in names),
            group_id=consumer.group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            max_workers=workers_per_topic,
            title=f"{consumer.service}:{'+'.join(names)}",
        )

        async def on_message(message: KafkaMessage) -> None:
            try:
                await consumer.handle_record(message.raw_message)
            except Exception:
                log.exception("message left unacknowledged; Kafka will deliver it again")
                # Back off before Kafka redelivers, so an outage is not a hot loop.
                await asyncio.sleep(1.0)
                raise

        subscriber(on_message)
