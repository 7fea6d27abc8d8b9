"""Dead letters: what a consumer could not handle, with the reason, ready to be replayed.

A dead letter keeps the original event's id and type, the error, where the message came
from (topic, partition, offset, key, headers) and the original itself with secrets
redacted (ciphertexts are kept, so a replay after a fix still works). Replaying sends the
original back to its source topic; the consumers' inboxes make that safe for every group.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from hopcast_shared.kafka import connection_kwargs, make_producer
from hopcast_shared.redact import redact_secrets, redact_text
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import TRACE_HEADERS
from hopcast_shared.topics import dlq_topic

DEAD_LETTER_TYPE = "hopcast.DeadLetter"
REPLAY_HEADER = "x-hopcast-replayed-from"
# Headers that describe the dead letter itself, not the original message.
_OWN_HEADERS = ("content-type", "ce_type", "ce_id", "x-hopcast-error", REPLAY_HEADER)


class SourcePosition(BaseModel):
    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int | None
    headers: list[tuple[str, str]]


class DeadLetter(BaseModel):
    """The JSON value of a message on `<group>.dlq`."""

    model_config = ConfigDict(frozen=True)

    type: str = DEAD_LETTER_TYPE
    dead_letter_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    consumer: str
    event_id: str | None
    event_type: str | None
    error_kind: str
    error: str
    attempts: int
    dead_lettered_at: datetime
    source: SourcePosition
    # Exactly one of these holds the original: parsed JSON, text, or base64 of raw bytes.
    original_json: Any = None
    original_text: str | None = None
    original_base64: str | None = None

    @classmethod
    def from_record(
        cls,
        record: ConsumerRecord[Any, Any],
        *,
        consumer: str,
        event_id: str | None,
        event_type: str | None,
        kind: str,
        error: str,
        attempts: int,
    ) -> DeadLetter:
        raw: bytes = record.value or b""
        original: dict[str, Any] = {}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            original["original_base64"] = base64.b64encode(raw).decode()
        else:
            try:
                parsed = redact_secrets(json.loads(text))
                # A lone surrogate escape ("\ud800") reads as a str that UTF-8 cannot hold: the
                # dead letter could not be written and the message would come back forever.
                json.dumps(parsed, ensure_ascii=False).encode("utf-8")
                original["original_json"] = parsed
            except (ValueError, RecursionError):  # not JSON, nested beyond what json can read, or not UTF-8-able
                original["original_text"] = redact_text(text)
        return cls(
            consumer=consumer,
            event_id=event_id,
            event_type=event_type,
            error_kind=kind,
            error=error,
            attempts=attempts,
            dead_lettered_at=datetime.now(UTC),
            source=SourcePosition(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key.decode("utf-8", "replace") if record.key is not None else None,
                timestamp_ms=record.timestamp,
                headers=[
                    (k, v.decode("utf-8", "replace"))
                    for k, v in (record.headers or ())
                    if k not in _OWN_HEADERS and k not in TRACE_HEADERS
                ],
            ),
            **original,
        )

    def original_bytes(self) -> bytes:
        """The original message value as it will be replayed."""
        if self.original_base64 is not None:
            return base64.b64decode(self.original_base64)
        if self.original_text is not None:
            return self.original_text.encode()
        return json.dumps(self.original_json, separators=(",", ":"), ensure_ascii=False).encode()


def dead_letter_message(
    letter: DeadLetter, record: ConsumerRecord[Any, Any]
) -> tuple[bytes | None, bytes, list[tuple[str, str]]]:
    """(key, value, headers) of the DLQ message: same key as the original, so order per tenant holds."""
    headers = [
        ("content-type", "application/json"),
        ("ce_type", DEAD_LETTER_TYPE),
        ("x-hopcast-error", letter.error_kind),
    ]
    headers += [(k, v.decode("latin-1")) for k, v in (record.headers or ()) if k in TRACE_HEADERS]
    return record.key, letter.model_dump_json().encode(), headers


async def read_dead_letters(
    kafka: KafkaSettings, service: str, *, timeout_s: float = 5.0, limit: int = 10_000
) -> list[DeadLetter]:
    """Every dead letter currently on `<service>.dlq`, oldest first per partition."""
    topic = kafka.topic(dlq_topic(service))
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(kafka))
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        # The consumer's own metadata covers only its subscriptions: ask for all of it.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining and len(letters) < limit:
            batch = await consumer.getmany(*remaining, timeout_ms=int(timeout_s * 1000))
            if not batch:
                break
            for tp, records in batch.items():
                for rec in records:
                    letters.append(DeadLetter.model_validate_json(rec.value))
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return letters


async def replay_dead_letters(
    kafka: KafkaSettings,
    letters: Sequence[DeadLetter],
    producer: AIOKafkaProducer | None = None,
) -> int:
    """Send each original back to its source topic with its key and headers; returns how many."""
    own = producer is None
    producer = producer or make_producer(kafka, "dlq-replay")
    if own:
        await producer.start()
    try:
        futures = []
        for letter in letters:
            headers = [(k, v.encode()) for k, v in letter.source.headers]
            headers.append((REPLAY_HEADER, str(letter.dead_letter_id).encode()))
            key = letter.source.key.encode() if letter.source.key is not None else None
            futures.append(await producer.send(letter.source.topic, letter.original_bytes(), key=key, headers=headers))
        for fut in futures:
            await fut
    finally:
        if own:
            await producer.stop()
    return len(letters)
