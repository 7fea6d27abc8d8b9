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
import dataclasses
import hashlib
import logging
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from pydantic import ValidationError

from hopcast_shared import metrics
from hopcast_shared.contract import EVENT_TYPES, ContractError, Envelope, parse_event, taken_on
from hopcast_shared.db import Conn, Database, is_infrastructure_error
from hopcast_shared.dlq import DeadLetter, dead_letter_message, safe_text, store_dead_letters
from hopcast_shared.fairness import FairQueues
from hopcast_shared.handling import BatchedHandler, EventContext, Handler, PermanentError, is_permanent
from hopcast_shared.inbox import DEAD_LETTERED, HANDLED, NO_ORGANIZATION, record_handled, record_many_handled
from hopcast_shared.outbox import OutboxRow, write_outbox
from hopcast_shared.redact import redact_text
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.telemetry import extract_context, messaging_attributes, tracer
from hopcast_shared.topics import dlq_topic

log = logging.getLogger(__name__)

IGNORED = "ignored"
"""The outcome of a known event type this service does not handle."""
REFUSED_BATCH_BYTES = 1_000_000
"""The originals' bytes past which a lane's refused records are dead-lettered without waiting
for more: a document of about a megabyte holds tens of megabytes while its dead letter is made."""


@dataclass(frozen=True)
class _Ready:
    """A valid record of a type this service handles, parsed once."""

    record: ConsumerRecord[Any, Any]
    envelope: Envelope
    data: Any
    handler: Handler


@dataclass(frozen=True)
class _Letter:
    """A record to dead-letter, and why."""

    record: ConsumerRecord[Any, Any]
    event_id: str | None
    event_type: str | None
    kind: str
    error: str
    attempts: int
    read_id: str | None = None  # the event's id once its envelope was read: a UUID, for its span


def _refusal(record: ConsumerRecord[Any, Any], parsed: ContractError | Envelope) -> _Letter | None:
    """The dead letter of a record refused as it was read (it breaks the contract, or its type is
    not in it), or None for an event of the contract this service does not handle."""
    if isinstance(parsed, ContractError):
        return _Letter(record, parsed.event_id, parsed.event_type, parsed.kind, str(parsed), attempts=0)
    if parsed.type in EVENT_TYPES:
        return None
    # Not in the contract (a newer version, a typo): keep it, replayable after an upgrade.
    error = f"event type {parsed.type!r} is not in the contract"
    return _Letter(record, str(parsed.id), parsed.type, "unknown_type", error, attempts=0, read_id=str(parsed.id))


class EventConsumer:
    """Runs a service's handlers over Kafka records with the inbox, the outbox and the DLQ.
    `consumes` names the topics the service reads (unprefixed): a type it handles that travels
    on more than one of them is taken from its primary topic only (`contract.taken_on`)."""

    def __init__(
        self,
        service: str,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        kafka: KafkaSettings,
        settings: ServiceSettings,
        consumes: Sequence[str] = (),
    ) -> None:
        self.service = service
        self.group_id = service
        self._db = db
        self._handlers = dict(handlers)
        self._handled = frozenset(self._handlers)
        self._kafka = kafka
        self._settings = settings
        self._taken_on = taken_on(self._handled, consumes)

    @property
    def handled_types(self) -> frozenset[str]:
        return self._handled

    async def handle_record(self, record: ConsumerRecord[Any, Any]) -> str:
        """Handle one record; returns the outcome. Raises only when the database is unreachable."""
        return await self._process(record, self._classify(record))

    async def handle_batch(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[str]:
        """Handle records read ahead, in fair rounds between organizations (`fairness.FairQueues`,
        as the fair feed does while it reads); returns their outcomes in the given order. An
        organization's records keep their order, and one behind thousands of another's is in
        the first round. Raises, once a round's lanes ended, when the database is unreachable:
        the inbox makes the records already handled duplicates when they come again."""
        queues = FairQueues(self._settings.consumer_batch_max)
        queues.extend(records)
        outcome_of: dict[int, str] = {}
        while queues:
            round_ = queues.take_round()
            for record, outcome in zip(round_, await self.handle_round(round_), strict=True):
                outcome_of[id(record)] = outcome
        return [outcome_of[id(r)] for r in records]

    async def handle_round(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[str]:
        """One round (at most `consumer_batch_max` records, in their partitions' order): its
        records of different keys in `consumer_lanes` lanes at once, each lane in order in its
        transactions (records this service handles share one, a record of a type it does not
        handle ignored where it stands, records refused as they are read dead-lettered together in
        another; should a transaction fail, it is rolled back and its records handled one by one,
        each with its retries and dead letter); returns their outcomes. Raises, once every lane
        ended, when the database is unreachable."""
        lanes = self._settings.consumer_lanes
        by_lane: dict[int, list[int]] = {}
        if lanes > 1 and len(records) > 1:
            for i, record in enumerate(records):
                by_lane.setdefault(zlib.crc32(record.key or b"") % lanes, []).append(i)
        if len(by_lane) > 1:
            return await self._handle_lanes(records, list(by_lane.values()))
        return await self._handle_in_order(records)

    async def _handle_lanes(self, records: Sequence[ConsumerRecord[Any, Any]], lanes: list[list[int]]) -> list[str]:
        """Records of different keys (organizations) in lanes of their own, at the same time, each
        lane in order in its own transactions: a key's records keep their order, and the batch
        waits on the database once per lane instead of once per record."""
        results = await asyncio.gather(
            *(self._handle_in_order([records[i] for i in lane]) for lane in lanes), return_exceptions=True
        )
        outcomes = [""] * len(records)
        for lane, result in zip(lanes, results, strict=True):
            if isinstance(result, BaseException):
                raise result  # every lane has finished; what they committed, the inbox remembers
            for i, outcome in zip(lane, result, strict=True):
                outcomes[i] = outcome
        return outcomes

    async def _handle_in_order(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[str]:
        """Consecutive records this service handles share a transaction; a record of a type it
        does not handle is answered where it stands without breaking theirs (ignoring touches
        nothing); records refused as they are read (`_refusal`) are dead-lettered together, in a
        transaction of their own, without breaking theirs either: a dead letter touches nothing
        a handler reads, so it need not keep its place among its key's events."""
        outcomes = [""] * len(records)
        run: list[tuple[int, _Ready]] = []
        refused: list[tuple[int, _Letter]] = []
        refused_bytes = 0
        ignored: Counter[str] = Counter()
        batch_max = self._settings.consumer_batch_max

        async def flush() -> None:
            for (i, _), outcome in zip(run, await self._handle_together([r for _, r in run]), strict=True):
                outcomes[i] = outcome
            run.clear()

        async def refuse() -> None:
            nonlocal refused_bytes
            await self._refuse_together([letter for _, letter in refused])
            for i, _ in refused:
                outcomes[i] = DEAD_LETTERED
            refused.clear()
            refused_bytes = 0

        for i, record in enumerate(records):
            ready = self._classify(record)
            if isinstance(ready, _Ready):
                run.append((i, ready))
                if len(run) >= batch_max:  # a transaction's size stays bounded
                    await flush()
                continue
            letter = _refusal(record, ready)
            if letter is None:
                # Another service's business: answered here, with no span and no await (most of
                # what a service reads is this), and counted once per type for the round.
                assert isinstance(ready, Envelope)
                outcomes[i] = IGNORED
                ignored[ready.type] += 1
                continue
            refused.append((i, letter))
            refused_bytes += len(record.value or b"")
            # Bounded in count and in bytes: a dead letter of a large record holds many times its
            # size while it is made, and a lane's letters are all made before the transaction.
            if len(refused) >= batch_max or refused_bytes >= REFUSED_BATCH_BYTES:
                await refuse()
        await flush()
        await refuse()
        for event_type, n in ignored.items():
            metrics.MESSAGES.labels(self.service, event_type, IGNORED).inc(n)
        return outcomes

    def _span(self, record: ConsumerRecord[Any, Any], message_id: str | None) -> AbstractContextManager[Span]:
        """The record's CONSUMER span, current while it is handled, child of the producer's trace."""
        return tracer.start_as_current_span(
            f"process {record.topic}",
            context=extract_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes=self._span_attributes(record, message_id),
        )

    def _batch_span(
        self, record: ConsumerRecord[Any, Any], message_id: str | None, event_type: str, count: int
    ) -> Span:
        """The CONSUMER span of a record handled with `count` others at once, started (its caller
        ends it), child of the producer's trace."""
        return tracer.start_span(
            f"process {record.topic}",
            context=extract_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                **self._span_attributes(record, message_id),
                "messaging.message.type": event_type,
                "messaging.batch.message_count": count,
            },
        )

    def _span_attributes(self, record: ConsumerRecord[Any, Any], message_id: str | None) -> dict[str, str | int]:
        """The conventions' attributes of a consumed record (its event id, once it was read as an
        event of the contract: a UUID, never what a hostile record made up)."""
        return {
            **messaging_attributes(
                "process",
                record.topic,
                partition=record.partition,
                key=record.key,
                message_id=message_id,
                group=self.group_id,
            ),
            "messaging.kafka.offset": record.offset,
            "messaging.message.body.size": len(record.value or b""),
        }

    def _classify(self, record: ConsumerRecord[Any, Any]) -> _Ready | ContractError | Envelope:
        """Parse a record: ready to handle, a contract error, or an envelope with no handler here.

        Whatever a record holds, reading it ends in one of those: an exception of the parser
        other than a ContractError (an overflow, a recursion limit, a bug) is the record's
        fault too, not a reason to read it again for ever."""
        if record.value is None:
            return ContractError("decode", "message value is null")
        topic = record.topic.removeprefix(self._kafka.topic_prefix)
        only = self._taken_on.get(topic, self.handled_types)
        try:
            envelope, data = parse_event(record.value, headers=record.headers, only=only, topic=topic, key=record.key)
        except ContractError as exc:
            return exc
        except Exception as exc:
            return ContractError("decode", f"message could not be read ({type(exc).__name__})")
        if envelope.type not in only:
            return envelope
        return _Ready(record, envelope, data, self._handlers[envelope.type])

    async def _handle_together(self, run: Sequence[_Ready]) -> list[str]:
        """One transaction for the run; on any failure, each record on its own instead."""
        if len(run) < 2:
            return [await self._process(ready.record, ready) for ready in run]
        started = time.perf_counter()
        outcomes: list[str] = []
        rows: list[OutboxRow] = []
        try:
            async with self._db.transaction() as conn:
                fresh = await record_many_handled(
                    conn,
                    consumer=self.group_id,
                    messages=[(r.envelope.organizationid, str(r.envelope.id), r.envelope.type) for r in run],
                )
                todo: list[_Ready] = []
                for ready in run:
                    message_id = (ready.envelope.organizationid, str(ready.envelope.id))
                    if message_id in fresh:
                        fresh.discard(message_id)  # a second copy in this batch is a duplicate
                        todo.append(ready)
                    outcomes.append("handled" if todo and todo[-1] is ready else "duplicate")
                for handler, group in _by_handler(todo):
                    if isinstance(handler, BatchedHandler) and len(group) > 1:
                        rows += await self._handle_many(conn, handler, group)
                        continue
                    for ready in group:
                        ctx = EventContext(conn, ready.envelope, self.service, self._kafka)
                        with self._span(ready.record, str(ready.envelope.id)) as span:
                            span.set_attribute("messaging.message.type", ready.envelope.type)
                            await handler(ctx, ready.data)
                        rows += ctx.outbox
                await write_outbox(conn, rows)
        except Exception as exc:
            log.info(
                "a batch of %d events failed (%s); handling them one by one",
                len(run),
                _describe(exc),
                extra={"service": self.service},
            )
            return [await self._process(ready.record, ready) for ready in run]
        # Each event's share of the batch's time, transaction included.
        share = (time.perf_counter() - started) / len(run)
        for ready, outcome in zip(run, outcomes, strict=True):
            metrics.MESSAGES.labels(self.service, ready.envelope.type, outcome).inc()
            if outcome == "handled":
                metrics.HANDLER_SECONDS.labels(self.service, ready.envelope.type).observe(share)
        return outcomes

    async def _handle_many(self, conn: Conn, handler: BatchedHandler, group: Sequence[_Ready]) -> list[OutboxRow]:
        """One call of a batched handler for its group of events (`_by_handler`); each event keeps
        its own span, under which its emitted events are made."""
        spans = [self._batch_span(r.record, str(r.envelope.id), r.envelope.type, len(group)) for r in group]
        contexts = [
            EventContext(conn, r.envelope, self.service, self._kafka, span=span)
            for r, span in zip(group, spans, strict=True)
        ]
        try:
            await handler.many([(ctx, r.data) for ctx, r in zip(contexts, group, strict=True)])
        finally:
            for span in spans:
                span.end()
        return [row for ctx in contexts for row in ctx.outbox]

    async def _process(self, record: ConsumerRecord[Any, Any], parsed: _Ready | ContractError | Envelope) -> str:
        envelope = parsed.envelope if isinstance(parsed, _Ready) else parsed if isinstance(parsed, Envelope) else None
        with self._span(record, str(envelope.id) if envelope is not None else None) as span:
            outcome, event_type = await self._handle(record, parsed)
            known = _known(event_type)
            span.set_attribute("messaging.message.type", known)
            span.set_attribute("hopcast.outcome", outcome)
        metrics.MESSAGES.labels(self.service, known, outcome).inc()
        return outcome

    async def _handle(
        self, record: ConsumerRecord[Any, Any], parsed: _Ready | ContractError | Envelope
    ) -> tuple[str, str | None]:
        if not isinstance(parsed, _Ready):
            letter = _refusal(record, parsed)
            if letter is None:
                assert isinstance(parsed, Envelope)
                return IGNORED, parsed.type
            await self._dead_letter_many([letter])
            return DEAD_LETTERED, letter.event_type
        envelope, data, handler = parsed.envelope, parsed.data, parsed.handler

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
                        organization_id=envelope.organizationid,
                        message_id=str(envelope.id),
                        event_type=envelope.type,
                        outcome=HANDLED,
                    )
                    if not fresh:
                        return "duplicate", envelope.type
                    ctx = EventContext(conn, envelope, self.service, self._kafka)
                    await handler(ctx, data)
                    await write_outbox(conn, ctx.outbox)
                metrics.HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)
                return "handled", envelope.type
            except Exception as exc:
                if is_permanent(exc):
                    kind = exc.kind if isinstance(exc, PermanentError) else "rejected"
                    await self._dead_letter(
                        record, str(envelope.id), envelope.type, kind, _describe(exc), attempts=attempt
                    )
                    return "dead_lettered", envelope.type
                infrastructure = is_infrastructure_error(exc)
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

    async def _refuse_together(self, letters: Sequence[_Letter]) -> None:
        """Dead-letter records refused as they were read, in one transaction, each with its own
        span (current while its dead letter is made and logged); should the transaction fail,
        each in one of its own. Raises when a dead letter alone cannot be written (the database
        is unreachable): its record is then not acknowledged, and comes again."""
        if not letters:
            return
        spans = [
            self._batch_span(letter.record, letter.read_id, _known(letter.event_type), len(letters))
            for letter in letters
        ]
        try:
            await self._dead_letter_many(letters, spans)
        except BaseException as exc:  # cancelled too: every span is ended
            alone = isinstance(exc, Exception) and len(letters) > 1
            for span in spans:
                if alone:  # each record's outcome is on the span of its own try, next
                    span.set_attribute("hopcast.outcome", "retried_alone")
                else:
                    span.record_exception(exc)
                    span.set_status(StatusCode.ERROR)
                span.end()
            if not alone:
                raise
            log.info(
                "a batch of %d dead letters failed (%s); writing them one by one",
                len(letters),
                _describe(exc),
                extra={"service": self.service},
            )
            for letter in letters:
                await self._refuse_together([letter])
            return
        for letter, span in zip(letters, spans, strict=True):
            span.set_attribute("hopcast.outcome", DEAD_LETTERED)
            span.end()
            metrics.MESSAGES.labels(self.service, _known(letter.event_type), DEAD_LETTERED).inc()

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
        """Dead-letter one record (`_dead_letter_many`)."""
        await self._dead_letter_many([_Letter(record, event_id, event_type, kind, error, attempts)])

    async def _dead_letter_many(self, letters: Sequence[_Letter], spans: Sequence[Span] = ()) -> None:
        """Keep each dead letter whole in the database, write its message to the outbox and its
        record to the inbox, all in one transaction. Nothing a record holds can make this fail:
        the original is kept as bytes, every text is made safe to store, and the message on
        the DLQ carries a preview past the topic's size limit. `spans`, when given, are the
        letters' own, each made current while its letter is made and logged.

        A dead letter is keyed in the inbox by the record's position in the log: a redelivery
        of that record is recognised (and a second copy of it in `letters`), while another
        record reusing its event id (a replay after a fix, a resend, or another organization's
        event) is judged on its own.
        """
        written: list[_Written] = []
        for n, letter in enumerate(letters):
            if n:
                await asyncio.sleep(0)  # a letter of a large record takes a while: the loop runs between
            with _current(spans, n):
                written.append(self._written(letter))
        async with self._db.transaction() as conn:
            fresh = await record_many_handled(
                conn,
                consumer=self.group_id,
                messages=[(w.inbox_organization, w.message_id, w.letter.event_type) for w in written],
                outcome=DEAD_LETTERED,
            )
            new: list[_Written] = []
            for w in written:
                if (w.inbox_organization, w.message_id) in fresh:
                    fresh.discard((w.inbox_organization, w.message_id))  # a second copy is not new
                    new.append(w)
            await store_dead_letters(conn, [(w.letter, w.record, w.organization_id) for w in new])
            await write_outbox(conn, [w.row for w in new])
        for n, w in enumerate(written):
            with _current(spans, n):
                log.error(
                    "dead-lettered %s %s: %s",
                    w.letter.event_type or "message",
                    w.letter.event_id or w.message_id,
                    w.letter.error,
                    extra={"service": self.service, "event_id": w.letter.event_id},
                )

    def _written(self, letter: _Letter) -> _Written:
        """The dead letter of a record as it is stored and sent, whatever the record holds."""
        record = letter.record
        try:
            dead = DeadLetter.from_record(
                record,
                consumer=self.group_id,
                event_id=letter.event_id,
                event_type=letter.event_type,
                kind=letter.kind,
                error=redact_text(letter.error),
                attempts=letter.attempts,
            )
            key, payload, headers = dead_letter_message(dead, record)
        except Exception as exc:  # a dead letter is written whatever the record; its original stays in the database
            log.exception("reading a record for its dead letter failed", extra={"service": self.service})
            dead = _last_resort_letter(
                record,
                self.group_id,
                letter.kind,
                f"{redact_text(letter.error)} ({type(exc).__name__})",
                letter.attempts,
            )
            key, payload, headers = dead_letter_message(dead, record)
        row = OutboxRow(
            event_id=dead.dead_letter_id,
            event_type=safe_text(f"DeadLetter:{dead.event_type or dead.error_kind}", 200) or "DeadLetter",
            topic=self._kafka.topic(dlq_topic(self.group_id)),
            key=key,
            payload=payload,
            headers=headers,
        )
        return _Written(
            record,
            dead,
            _organization_of(record),
            f"kafka:{record.topic}:{record.partition}:{record.offset}",
            row,
        )


@dataclass(frozen=True)
class _Written:
    """A dead letter ready to write: where it is kept in the inbox, and its DLQ message."""

    record: ConsumerRecord[Any, Any]
    letter: DeadLetter
    organization_id: uuid.UUID | None  # the record's key, when it is one
    message_id: str
    row: OutboxRow

    @property
    def inbox_organization(self) -> uuid.UUID:
        return self.organization_id or NO_ORGANIZATION


def _known(event_type: str | None) -> str:
    """The type as a metric series or a span names it: one of the contract's, or "?" (a hostile
    producer could otherwise make one series per made-up type)."""
    return event_type if event_type is not None and event_type in EVENT_TYPES else "?"


def _current(spans: Sequence[Span], n: int) -> AbstractContextManager[Any]:
    """The n-th span made current, when there are spans."""
    return trace.use_span(spans[n], end_on_exit=False) if spans else nullcontext()


def _by_handler(todo: Sequence[_Ready]) -> list[tuple[Handler, list[_Ready]]]:
    """The records in groups of one handler each, to be handled one group after another: what a
    batched handler takes at once. Only the records of one queue (topic, partition and key: one
    organization's, in Kafka's order) must keep their order; records of different queues are
    independent (the consumer's lanes already handle them at the same time). So each group takes,
    queue by queue, every record of its handler at the head of a queue (and those right behind it),
    the handler with the most heads first. In a round where the events of a run's stages
    interleave, a type's events then go to its handler together instead of one by one."""
    queues: dict[tuple[str, int, bytes | None], deque[_Ready]] = {}
    for ready in todo:
        queues.setdefault((ready.record.topic, ready.record.partition, ready.record.key), deque()).append(ready)
    groups: list[tuple[Handler, list[_Ready]]] = []
    while queues:
        heads = Counter(id(queue[0].handler) for queue in queues.values())
        chosen = max(heads, key=heads.__getitem__)  # the first of the most, in the records' order
        group: list[_Ready] = []
        for key in list(queues):
            queue = queues[key]
            while queue and id(queue[0].handler) == chosen:
                group.append(queue.popleft())
            if not queue:
                del queues[key]
        groups.append((group[0].handler, group))
    return groups


def _organization_of(record: ConsumerRecord[Any, Any]) -> uuid.UUID | None:
    """The organization a record is keyed to, when its key is one (the contract's key)."""
    key = record.key
    if key is None or len(key) != 36:
        return None
    try:
        return uuid.UUID(key.decode("ascii"))
    except ValueError:
        return None


def _last_resort_letter(
    record: ConsumerRecord[Any, Any], consumer: str, kind: str, error: str, attempts: int
) -> DeadLetter:
    """A dead letter of the record's place, size and hash alone, for a record whose content even
    the dead letter could not hold (its original is kept whole in `dead_letters`)."""
    bare = dataclasses.replace(record, value=None, headers=[])
    letter = DeadLetter.from_record(
        bare, consumer=consumer, event_id=None, event_type=None, kind=kind, error=error, attempts=attempts
    )
    value = record.value or b""
    return letter.model_copy(
        update={
            "original_text": None,
            "original_preview": "",
            "original_size": len(value),
            "original_sha256": hashlib.sha256(value).hexdigest(),
        }
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # pydantic's text includes the input values; keep only where and what.
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]
