"""Dead letters keep what a replay needs and nothing secret; log lines are JSON with trace ids."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import EXAMPLE_TOKEN_CIPHERTEXT, example_event
from hopcast_shared.dlq import REPLAY_HEADER, DeadLetter, StoredDeadLetter, _in_record_order, dead_letter_message
from hopcast_shared.logs import JsonFormatter
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, recorded_spans

PLAINTEXT_TOKEN = "ya29.a0AfH6SMBx-very-secret-plaintext-token"  # noqa: S105 (made up)


def _letter(value: bytes, **headers: bytes) -> tuple[DeadLetter, object]:
    record = as_record(value, topic="upstream.events", headers=list(headers.items()))
    letter = DeadLetter.from_record(
        record, consumer="publisher", event_id=None, event_type=None, kind="decode", error="boom", attempts=0
    )
    return letter, record


def test_a_plaintext_token_is_redacted_and_a_ciphertext_kept() -> None:
    event = json.loads(example_event("SocialAccountConnected").to_json())
    event["data"]["access_token"] = PLAINTEXT_TOKEN
    event["data"]["refresh_token"] = EXAMPLE_TOKEN_CIPHERTEXT
    letter, _ = _letter(json.dumps(event).encode())
    text = letter.model_dump_json()
    assert PLAINTEXT_TOKEN not in text
    assert letter.original_json["data"]["refresh_token"] == EXAMPLE_TOKEN_CIPHERTEXT
    assert letter.original_json["data"]["handle"] == event["data"]["handle"]


def test_text_and_binary_originals_survive_for_replay() -> None:
    letter, _ = _letter(b"not json at all")
    assert letter.original_text == "not json at all" and letter.original_bytes() == b"not json at all"
    raw = b"\xff\xfe\x00binary"
    letter, _ = _letter(raw)
    assert letter.original_base64 is not None and letter.original_bytes() == raw


def test_a_lone_surrogate_escape_is_kept_as_text_so_the_dead_letter_can_be_written() -> None:
    # Valid JSON whose string no UTF-8 can hold: before, writing the dead letter raised and the
    # message was left unacknowledged, so every consumer of its partition stopped on it.
    raw = b'{"specversion":"1.0","type":"BrandProfileUpdated","data":{"name":"\\ud800 broken"}}'
    letter, record = _letter(raw)
    _, value, _ = dead_letter_message(letter, record)
    assert DeadLetter.model_validate_json(value).original_bytes() == raw
    assert letter.original_json is None and letter.original_text is not None


def test_the_dead_letter_message_keeps_the_key_and_drops_old_replay_markers() -> None:
    org = str(uuid.uuid4())
    event = example_event("OrganizationCreated", organization_id=org)
    record = as_record(event, headers=[(REPLAY_HEADER, b"x"), ("x-custom", b"kept")])
    letter = DeadLetter.from_record(
        record, consumer="billing", event_id=str(event.id), event_type=event.type, kind="data", error="e", attempts=1
    )
    key, value, headers = dead_letter_message(letter, record)
    assert key == org.encode()
    assert ("x-custom", "kept") in letter.source.headers
    assert all(name != REPLAY_HEADER for name, _ in letter.source.headers)
    assert DeadLetter.model_validate_json(value).event_id == str(event.id)
    assert ("x-hopcast-error", "data") in headers


def test_log_lines_are_json_with_trace_ids_and_no_secrets() -> None:
    formatter = JsonFormatter("billing")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        record = logging.makeLogRecord(
            {"name": "x", "levelname": "INFO", "msg": "calling with Bearer %s", "args": (PLAINTEXT_TOKEN,)}
        )
        line = json.loads(formatter.format(record))
    assert line["service"] == "billing" and line["level"] == "INFO"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert PLAINTEXT_TOKEN not in json.dumps(line)


def test_a_replay_keeps_each_partition_s_records_in_order_and_the_topics_in_time() -> None:
    def stored(topic: str, partition: int, offset: int) -> StoredDeadLetter:
        return StoredDeadLetter(
            id=uuid.uuid4(), consumer="c", organization_id=None, event_id=None, event_type=None, error_kind="k",
            error="e", attempts=0, source_topic=topic, source_partition=partition, source_offset=offset, key=None,
            value=b"", headers=[], value_size=0, value_sha256="", redacted=False,
            dead_lettered_at=datetime.now(UTC), replayed_at=None, replays=0,
        )  # fmt: skip

    # In the order their dead letters were written: partition 0's records 7 and 5 reversed (a
    # lane's refused record after its handled one), another topic's between them.
    letters = [stored("u", 0, 7), stored("s", 0, 3), stored("u", 0, 5), stored("u", 1, 9), stored("s", 0, 2)]
    replayed = [(x.source_topic, x.source_partition, x.source_offset) for x in _in_record_order(letters)]
    assert replayed == [("u", 0, 5), ("s", 0, 2), ("u", 0, 7), ("u", 1, 9), ("s", 0, 3)]


async def test_records_refused_together_end_their_spans_even_when_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = EventConsumer(
        "refuses",
        object(),  # type: ignore[arg-type]  (the database is not reached: the write is cancelled)
        {},
        kafka=KafkaSettings(),
        settings=ServiceSettings(name="refuses", database_url="postgresql://unused/unused", http_port=18098),
    )

    async def cancelled(*_: object) -> None:
        raise asyncio.CancelledError

    monkeypatch.setattr(consumer, "_dead_letter_many", cancelled)
    records = [as_record(b"not json", topic="upstream.events"), as_record(b"[]", topic="upstream.events")]
    with recorded_spans() as exporter, pytest.raises(asyncio.CancelledError):
        await consumer.handle_batch(records)
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert all(span.status.status_code is StatusCode.ERROR for span in spans)
