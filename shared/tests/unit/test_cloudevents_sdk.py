"""Our Kafka messages against the official CloudEvents SDK (`cloudevents`, its Kafka binding):
every event type as the outbox writes it parses with the SDK's `from_kafka`, and what the SDK
writes, in either mode, we read as the same event. The live check (records as they come off
the real broker, a saga sent in binary mode) is tests/e2e/test_cloudevents_modes.py."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from hopcast_shared.contract import EVENT_TYPES, ContractError, Envelope, parse_event
from hopcast_shared.contract.examples import EXAMPLES, example_event
from hopcast_shared.contract.kafka_binding import binary_document, is_binary
from hopcast_shared.dlq import DeadLetter, SourcePosition, dead_letter_message
from hopcast_shared.outbox import event_rows
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import as_record

KAFKA = KafkaSettings(bootstrap_servers="localhost:9092")
ALL_TYPES = sorted(EXAMPLES)


def _outbox_message(type_name: str) -> tuple[Envelope, ce_kafka.KafkaMessage]:
    """An example event as the outbox writes it to Kafka: value, key and headers."""
    event = example_event(type_name)
    [row, *_] = event_rows(
        KAFKA,
        [event.data_as(EVENT_TYPES[type_name].model)],
        organization_id=event.organizationid,
        source="hopcast/test",
        correlation_id="run-1",
        causation_id=str(uuid.uuid4()),
        trace=[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
    )
    headers = {name: value.encode() for name, value in row.headers}
    written = Envelope.parse(row.payload)
    return written, ce_kafka.KafkaMessage(headers=headers, key=row.key, value=row.payload)


def _attributes(event: BaseCloudEvent) -> dict[str, Any]:
    return {k: v for k, v in event.get_attributes().items() if k != "time"}


def test_every_event_type_has_an_example() -> None:
    assert set(ALL_TYPES) == set(EVENT_TYPES) and len(ALL_TYPES) >= 39


@pytest.mark.parametrize("type_name", ALL_TYPES)
def test_the_sdk_reads_every_event_type_as_the_outbox_writes_it(type_name: str) -> None:
    written, message = _outbox_message(type_name)
    assert not any(name.startswith("ce_") for name in message.headers)
    assert not is_binary(list(message.headers.items()))

    event = ce_kafka.from_kafka_event(message)

    assert event.get_type() == type_name
    assert event.get_id() == str(written.id)
    assert event.get_source() == "hopcast/test"
    assert event.get_specversion() == "1.0"
    assert event.get_time() == written.time
    assert event.get_extension("organizationid") == str(written.organizationid)
    assert event.get_extension("correlationid") == "run-1"
    assert event.get_data() == written.data


@pytest.mark.parametrize("type_name", ALL_TYPES)
@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_what_the_sdk_writes_in_either_mode_we_read_as_the_same_event(type_name: str, mode: str) -> None:
    written, message = _outbox_message(type_name)
    sdk_event = ce_kafka.from_kafka_event(message)
    again = ce_kafka.to_binary_event(sdk_event) if mode == "binary" else ce_kafka.to_structured_event(sdk_event)
    headers = list(again.headers.items())
    assert is_binary(headers) == (mode == "binary")

    envelope, data = parse_event(again.value, headers=headers, key=message.key)

    assert envelope == written
    assert data == written.data_as(EVENT_TYPES[type_name].model)


def test_a_binary_message_and_its_structured_twin_give_the_same_envelope_and_inbox_key() -> None:
    event = example_event("ScheduleCreated")
    binary = ce_kafka.to_binary_event(
        CloudEvent(
            attributes={
                "id": str(event.id),
                "source": event.source,
                "type": event.type,
                "time": event.time,
                "datacontenttype": "application/json; charset=utf-8",
                "organizationid": str(event.organizationid),
            },
            data=event.data,
        )
    )

    from_binary, _ = parse_event(binary.value, headers=list(binary.headers.items()))
    from_structured, _ = parse_event(event.to_json())

    assert from_binary == from_structured
    assert (from_binary.organizationid, from_binary.id) == (event.organizationid, event.id)


def test_earlier_structured_records_with_ce_headers_still_read_as_structured() -> None:
    """Records written before this version carried `ce_type` and `ce_id` beside a structured
    value: the binding reads them by their content type, and so do we."""
    event = example_event("OrganizationCreated")
    headers = [
        ("content-type", b"application/cloudevents+json"),
        ("ce_type", event.type.encode()),
        ("ce_id", str(event.id).encode()),
    ]
    assert not is_binary(headers)
    envelope, _ = parse_event(event.to_json(), headers=headers)
    assert envelope == event


@pytest.mark.parametrize(
    ("headers", "value", "kind"),
    [
        ([("ce_id", b"x"), ("ce_id", b"y")], b"{}", "envelope"),
        ([("ce_type", None)], b"{}", "envelope"),
        ([("ce_Bad-Name", b"x")], b"{}", "envelope"),
        ([("ce_data", b"{}")], b"{}", "envelope"),
        ([("ce_type", b"\xff\xfe")], b"{}", "decode"),
        ([("ce_type", b"OrganizationCreated")], b"not json", "decode"),
        ([("ce_type", b"OrganizationCreated")], None, "decode"),
        ([("ce_type", b"OrganizationCreated")], b"[1, 2]", "envelope"),
        ([("ce_type", b"OrganizationCreated"), ("content-type", b"text/plain")], b"{}", "envelope"),
    ],
)
def test_broken_binary_messages_are_contract_errors(
    headers: list[tuple[str, bytes | None]], value: bytes | None, kind: str
) -> None:
    with pytest.raises(ContractError) as caught:
        Envelope.from_document(binary_document(headers, value))
    assert caught.value.kind == kind


_HEADER_NAMES = st.sampled_from(
    ["ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_organizationid", "content-type", "ce_"]
) | st.text(max_size=12)


@given(
    headers=st.lists(st.tuples(_HEADER_NAMES, st.none() | st.binary(max_size=40)), max_size=8),
    value=st.none() | st.binary(max_size=60),
)
def test_any_binary_headers_and_value_get_a_contract_answer(
    headers: list[tuple[str, bytes | None]], value: bytes | None
) -> None:
    """Whatever an upstream producer puts in the headers, reading ends in an envelope or a
    ContractError (dead-lettered with its kind), never another exception."""
    try:
        envelope, _ = parse_event(value or b"", headers=headers)
    except ContractError as refused:
        assert refused.kind in ("decode", "envelope", "unknown_type", "data")
    else:  # so few headers cannot make a whole binary-mode event: only a structured value reads
        assert not is_binary(headers) and envelope == Envelope.parse(value or b"")


def test_the_dead_letter_message_is_a_binary_mode_cloudevent() -> None:
    record = as_record(example_event("OrganizationCreated"))
    letter = DeadLetter(
        consumer="content",
        event_id=None,
        event_type=None,
        error_kind="data",
        error="data of OrganizationCreated invalid",
        attempts=1,
        dead_lettered_at=datetime(2027, 3, 14, 7, 0, tzinfo=UTC),
        source=SourcePosition(topic="upstream.events", partition=0, offset=1, key=None, timestamp_ms=0, headers=[]),
    )
    key, value, headers = dead_letter_message(letter, record)

    event = ce_kafka.from_kafka_event(ce_kafka.KafkaMessage({k: v.encode() for k, v in headers}, key, value))

    assert (event.get_type(), event.get_id(), event.get_source()) == (
        "hopcast.DeadLetter",
        str(letter.dead_letter_id),
        "hopcast/content",
    )
    assert event.get_data() == json.loads(value)
    assert DeadLetter.model_validate_json(value) == letter
