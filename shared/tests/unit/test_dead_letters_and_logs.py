"""Dead letters keep what a replay needs and nothing secret; log lines are JSON with trace ids."""

from __future__ import annotations

import json
import logging
import uuid

from opentelemetry import trace

from hopcast_shared.contract.examples import EXAMPLE_TOKEN_CIPHERTEXT, example_event
from hopcast_shared.dlq import REPLAY_HEADER, DeadLetter, dead_letter_message
from hopcast_shared.logs import JsonFormatter
from hopcast_shared.testing import as_record

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
