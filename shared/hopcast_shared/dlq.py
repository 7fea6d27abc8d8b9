"""Dead letters: what a consumer could not handle, with the reason, ready to be replayed.

A dead letter keeps the original event's id and type, the error, where the message came
from (topic, partition, offset, key, headers) and the original itself with secrets
redacted (ciphertexts are kept, so a replay after a fix still works). Replaying sends the
original back to its source topic; the consumers' inboxes make that safe for every group.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from hopcast_shared.db import Conn
from hopcast_shared.kafka import connection_kwargs, make_producer
from hopcast_shared.redact import REDACTED, is_secret_key, redact_secrets, redact_text
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import TRACE_HEADERS
from hopcast_shared.topics import dlq_topic

DEAD_LETTER_TYPE = "hopcast.DeadLetter"
REPLAY_HEADER = "x-hopcast-replayed-from"
# What a message on `<group>.dlq` may weigh in all (value, key and headers): under the broker's
# default `message.max.bytes` (1,048,588) with room for the record's own framing.
DLQ_MAX_MESSAGE_BYTES = 1_000_000
MAX_KEY_BYTES = 1_024
# Headers that describe the dead letter itself, not the original message.
# (The `ce_` headers of a binary-mode original are its own attributes, and are kept.)
_OWN_HEADERS = ("content-type", "x-hopcast-error", REPLAY_HEADER)


class SourcePosition(BaseModel):
    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int | None
    headers: list[tuple[str, str | None]]


class DeadLetter(BaseModel):
    """The JSON value of a message on `<group>.dlq`.

    The original is inline (one of `original_json`, `original_text`, `original_base64`) while
    the message fits the topic's size limit; past it, the message carries `original_preview`
    instead, and the original stays whole in the service's `dead_letters` table, from which
    `hopcast dlq list` and `dlq replay` work whatever the size. `original_size` and
    `original_sha256` are those of the value as it came.
    """

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
    # Exactly one of these holds the original while it fits: parsed JSON, text, or base64 of raw bytes.
    original_json: Any = None
    original_text: str | None = None
    original_base64: str | None = None
    original_size: int = 0
    original_sha256: str = ""
    # The first characters of the original (secrets redacted) when it is not inline.
    original_preview: str | None = None

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
                # What the dead letter's own serializer (pydantic's) must write: a lone surrogate
                # escape ("\ud800") reads as a str that UTF-8 cannot hold, and nesting that json
                # reads may be deeper than pydantic writes; either way the dead letter could not
                # be written and the message would come back forever.
                pydantic_core.to_json([[parsed]])  # inside the dead letter, a level or two deeper
                original["original_json"] = parsed
            except (ValueError, RecursionError, pydantic_core.PydanticSerializationError):
                original["original_text"] = redact_text(text)
        return cls(
            consumer=consumer,
            event_id=safe_text(event_id, 200),
            event_type=safe_text(event_type, 200),
            error_kind=safe_text(kind, 100) or "unknown",
            error=safe_text(error, 2000) or "",
            attempts=attempts,
            dead_lettered_at=datetime.now(UTC),
            source=SourcePosition(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                key=safe_text(record.key.decode("utf-8", "replace"), 1000) if record.key is not None else None,
                timestamp_ms=record.timestamp,
                headers=[
                    (safe_text(k, 200) or "", _shown_header(k, v))
                    for k, v in (record.headers or ())
                    if k not in _OWN_HEADERS and k not in TRACE_HEADERS
                ],
            ),
            original_size=len(raw),
            original_sha256=hashlib.sha256(raw).hexdigest(),
            **original,
        )

    def original_bytes(self) -> bytes:
        """The original message value as it will be replayed (inline originals only)."""
        if self.original_base64 is not None:
            return base64.b64decode(self.original_base64)
        if self.original_text is not None:
            return self.original_text.encode()
        if self.original_json is None and self.original_preview is not None:
            raise ValueError(
                "this dead letter carries a preview only: replay it from the database (hopcast dlq replay)"
            )
        return json.dumps(self.original_json, separators=(",", ":"), ensure_ascii=False).encode()

    def preview_only(self, max_bytes: int) -> DeadLetter:
        """The same dead letter with a preview of the original instead of the original itself,
        and as many source headers as fit, within `max_bytes` of JSON."""
        shown = self.original_text
        if shown is None and self.original_json is not None:
            shown = json.dumps(self.original_json, ensure_ascii=False)
        if shown is None and self.original_base64 is not None:
            shown = self.original_base64
        headers: list[tuple[str, str | None]] = []
        budget = max_bytes // 4
        for name, value in self.source.headers:
            budget -= len(name) + len(value or "") + 16
            if budget < 0:
                break
            headers.append((name[:200], value))
        return self.model_copy(
            update={
                "original_json": None,
                "original_text": None,
                "original_base64": None,
                "original_preview": safe_text(shown or "", PREVIEW_CHARS),
                "source": self.source.model_copy(update={"headers": headers}),
            }
        )


PREVIEW_CHARS = 2_000
_NOT_TEXT = re.compile(r"[\x00\ud800-\udfff]")


def safe_text(value: str | None, limit: int) -> str | None:
    """Text any store takes: no NUL (PostgreSQL's text and jsonb refuse it), no lone surrogate
    (UTF-8 cannot hold one), at most `limit` characters."""
    if value is None:
        return None
    return _NOT_TEXT.sub("\ufffd", value[:limit])


def _shown_header(name: str, value: bytes | None) -> str | None:
    """A header value as a dead letter shows it: text, secrets masked."""
    if value is None:
        return None
    if is_secret_key(name):
        return REDACTED
    return redact_text(safe_text(bytes(value).decode("utf-8", "replace"), 8_192) or "")


_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE = re.compile(rb"[\x20-\x7e]{0,512}")


def trace_headers_of(record: ConsumerRecord[Any, Any]) -> list[tuple[str, str]]:
    """The record's W3C trace headers, when well formed (anything else is content, not context)."""
    found: list[tuple[str, str]] = []
    for name, value in record.headers or ():
        if value is None:
            continue
        if (name == "traceparent" and _TRACEPARENT.fullmatch(value)) or (
            name == "tracestate" and _TRACESTATE.fullmatch(value)
        ):
            found.append((name, bytes(value).decode("ascii")))
    return found


def dead_letter_message(
    letter: DeadLetter, record: ConsumerRecord[Any, Any], *, max_bytes: int = DLQ_MAX_MESSAGE_BYTES
) -> tuple[bytes | None, bytes, list[tuple[str, str]]]:
    """(key, value, headers) of the DLQ message: same key as the original, so a tenant's dead
    letters share a partition (in the order they were written: a lane's records refused as they
    are read after its handled ones; `replay_stored` sends them back in their records' order);
    within `max_bytes` in all (a preview of the original past it).

    The message is a binary-mode CloudEvent 1.0 (`contract/kafka_binding.py`): its attributes in
    `ce_` headers, the dead letter as its JSON data, so standard clients read it as one and
    the value stays the plain `DeadLetter` that `hopcast dlq` reads."""
    headers = [
        ("content-type", "application/json"),
        ("ce_specversion", "1.0"),
        ("ce_id", str(letter.dead_letter_id)),
        ("ce_source", f"hopcast/{letter.consumer}"),
        ("ce_type", DEAD_LETTER_TYPE),
        ("ce_time", letter.dead_lettered_at.astimezone(UTC).isoformat().replace("+00:00", "Z")),
        ("x-hopcast-error", letter.error_kind),
        *trace_headers_of(record),
    ]
    key = record.key if record.key is None or len(record.key) <= MAX_KEY_BYTES else record.key[:MAX_KEY_BYTES]
    budget = max_bytes - sum(len(k) + len(v) for k, v in headers) - len(key or b"")
    value = letter.model_dump_json().encode()
    if len(value) > budget:
        value = letter.preview_only(budget).model_dump_json().encode()
    return key, value, headers


def stored_original(
    letter: DeadLetter, record: ConsumerRecord[Any, Any]
) -> tuple[bytes | None, list[bytes], list[bytes | None], bool]:
    """(value, header keys, header values, redacted) as the `dead_letters` table keeps them: the
    bytes as they came, but for secrets (a plaintext token sent by mistake, an Authorization
    header), which are masked as on the topic: secrets are never at rest in plaintext."""
    value: bytes | None = record.value
    redacted = False
    if value is not None and letter.original_base64 is None:
        if letter.original_json is not None:
            try:
                unchanged = letter.original_json == json.loads(value)
            except (ValueError, RecursionError):
                unchanged = False
            if not unchanged:
                value, redacted = letter.original_bytes(), True
        elif letter.original_text is not None and letter.original_text != value.decode("utf-8", "replace"):
            value, redacted = letter.original_bytes(), True
    keys: list[bytes] = []
    values: list[bytes | None] = []
    for name, header in record.headers or ():
        keys.append(name.encode("utf-8", "surrogateescape"))
        if header is not None and (is_secret_key(name) or _shown_header(name, header) != _plain(header)):
            values.append(REDACTED.encode())
            redacted = True
        else:
            values.append(None if header is None else bytes(header))
    return value, keys, values, redacted


def _plain(value: bytes) -> str:
    return safe_text(bytes(value).decode("utf-8", "replace"), 8_192) or ""


_STORE = """
INSERT INTO dead_letters (id, consumer, organization_id, event_id, event_type, error_kind, error, attempts,
    source_topic, source_partition, source_offset, source_timestamp_ms, key, value, header_keys, header_values,
    value_size, value_sha256, redacted, dead_lettered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
"""


async def store_dead_letters(
    conn: Conn, letters: Sequence[tuple[DeadLetter, ConsumerRecord[Any, Any], uuid.UUID | None]]
) -> None:
    """Keep dead letters whole in the service's database, in the caller's transaction (one
    pipelined round trip): each with its record and the organization it is keyed to."""
    rows = []
    for letter, record, organization_id in letters:
        value, keys, values, redacted = stored_original(letter, record)
        rows.append(
            (
                letter.dead_letter_id,
                letter.consumer,
                organization_id,
                letter.event_id,
                letter.event_type,
                letter.error_kind,
                letter.error,
                letter.attempts,
                safe_text(record.topic, 300),
                record.partition,
                record.offset,
                record.timestamp,
                record.key,
                value,
                keys,
                values,
                letter.original_size,
                bytes.fromhex(letter.original_sha256),
                redacted,
                letter.dead_lettered_at,
            )
        )
    if rows:
        await conn.executemany(_STORE, rows)


_STORED_AS_IS = (
    "id",
    "consumer",
    "organization_id",
    "event_id",
    "event_type",
    "error_kind",
    "error",
    "attempts",
    "source_topic",
    "source_partition",
    "source_offset",
    "key",
    "value",
    "value_size",
    "redacted",
    "dead_lettered_at",
    "replayed_at",
    "replays",
)


@dataclass(frozen=True)
class StoredDeadLetter:
    """A row of `dead_letters`: the dead letter and its original, whole."""

    id: uuid.UUID
    consumer: str
    organization_id: uuid.UUID | None
    event_id: str | None
    event_type: str | None
    error_kind: str
    error: str
    attempts: int
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    value_size: int
    value_sha256: str
    redacted: bool
    dead_lettered_at: datetime
    replayed_at: datetime | None
    replays: int

    @classmethod
    def from_row(cls, row: Any) -> StoredDeadLetter:
        as_stored = {name: row[name] for name in _STORED_AS_IS}
        headers = [
            (k.decode("utf-8", "surrogateescape"), v)
            for k, v in zip(row["header_keys"], row["header_values"], strict=True)
        ]
        return cls(**as_stored, headers=headers, value_sha256=bytes(row["value_sha256"]).hex())

    def summary(self) -> dict[str, Any]:
        """What `hopcast dlq list --json` prints: the dead letter, with a preview of its original."""
        preview = (self.value or b"")[:PREVIEW_CHARS].decode("utf-8", "replace")
        try:
            original = json.loads(self.value) if self.value is not None else None
        except (ValueError, RecursionError):
            original = None
        return {
            "dead_letter_id": str(self.id),
            "consumer": self.consumer,
            "organization_id": None if self.organization_id is None else str(self.organization_id),
            "event_id": self.event_id,
            "event_type": self.event_type,
            "error_kind": self.error_kind,
            "error": self.error,
            "attempts": self.attempts,
            "source": {"topic": self.source_topic, "partition": self.source_partition, "offset": self.source_offset},
            "value_size": self.value_size,
            "value_sha256": self.value_sha256,
            "redacted": self.redacted,
            "preview": redact_text(safe_text(preview, PREVIEW_CHARS) or ""),
            "original_json": original,  # as stored: secrets already masked
            "dead_lettered_at": self.dead_lettered_at.isoformat(),
            "replayed_at": None if self.replayed_at is None else self.replayed_at.isoformat(),
            "replays": self.replays,
        }


async def stored_dead_letters(
    conn: Conn,
    *,
    event_id: str | None = None,
    event_type: str | None = None,
    dead_letter_id: uuid.UUID | None = None,
    pending_only: bool = False,
    limit: int = 10_000,
) -> list[StoredDeadLetter]:
    """The service's dead letters, oldest first, whatever their size."""
    rows = await conn.fetch(
        """
        SELECT * FROM dead_letters
        WHERE ($1::text IS NULL OR event_id = $1) AND ($2::text IS NULL OR event_type = $2)
          AND ($3::uuid IS NULL OR id = $3) AND (NOT $4 OR replayed_at IS NULL)
        ORDER BY dead_lettered_at, id LIMIT $5
        """,
        event_id,
        event_type,
        dead_letter_id,
        pending_only,
        limit,
    )
    return [StoredDeadLetter.from_row(row) for row in rows]


def _in_record_order(letters: Sequence[StoredDeadLetter]) -> list[StoredDeadLetter]:
    """The letters in the order given (their dead letters' time), but each source partition's
    in the order of its records' offsets, in the places that partition's letters held: a key's
    records go back in the order they came (a lane writes its records refused as they are read
    after its handled ones), and letters of different topics keep their order in time. A letter
    of a replayed record that was dead-lettered again has the replayed copy's offset."""
    places: dict[tuple[str, int], list[int]] = {}
    for i, letter in enumerate(letters):
        places.setdefault((letter.source_topic, letter.source_partition), []).append(i)
    ordered = list(letters)
    for indices in places.values():
        by_offset = sorted((letters[i] for i in indices), key=lambda letter: letter.source_offset)
        for i, letter in zip(indices, by_offset, strict=True):
            ordered[i] = letter
    return ordered


async def replay_stored(
    kafka: KafkaSettings, conn: Conn, letters: Sequence[StoredDeadLetter], producer: AIOKafkaProducer | None = None
) -> int:
    """Send each original back to its source topic as it came (value, key and headers), in
    `_in_record_order`, and mark it replayed; returns how many. The consumers' inboxes make a
    repeated replay harmless."""
    own = producer is None
    producer = producer or make_producer(kafka, "dlq-replay")
    if own:
        await producer.start()
    try:
        futures = []
        for letter in _in_record_order(letters):
            headers = [(k, v if v is not None else b"") for k, v in letter.headers if k != REPLAY_HEADER]
            headers.append((REPLAY_HEADER, str(letter.id).encode()))
            futures.append(await producer.send(letter.source_topic, letter.value, key=letter.key, headers=headers))
        for fut in futures:
            await fut
    finally:
        if own:
            await producer.stop()
    await conn.execute(
        "UPDATE dead_letters SET replayed_at = now(), replays = replays + 1 WHERE id = ANY($1::uuid[])",
        [letter.id for letter in letters],
    )
    return len(letters)


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
