"""No record stops a partition, named: each record that once stalled one (issue 14, and those the
generated run of test_generated_hostile_records.py found since), then a good event with the same
key, through the kernel's consumer as the services run it on the real broker and database. The
hostile record must be dead-lettered (or applied, where it is valid) and the good event behind it
applied within 10 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from hopcast_shared.contract import MAX_EVENT_BYTES
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.hostile import TRACEPARENT, encode, envelope_value, hostile_then_good, nested

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def broken_envelope(type_name: str, org: uuid.UUID, **changes: Any) -> dict[str, Any]:
    value = envelope_value(type_name, org, uuid.uuid4())
    for name, change in changes.items():
        if name == "data":
            value["data"].update(change)
        else:
            value[name] = change
    return value


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
async def test_an_envelope_time_that_overflows_in_utc_is_dead_lettered_and_the_key_flows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path, when: str
) -> None:
    org = uuid.uuid4()
    value = encode(broken_envelope("OrganizationCreated", org, time=when), ascii_only=True)
    fate, letter = await hostile_then_good(kafka, database_url, tmp_path, value, org=org)
    assert fate == "dead_lettered" and letter is not None
    assert letter["error_kind"] == "envelope", letter["error"]


@pytest.mark.parametrize(
    ("type_name", "name", "when"),
    [
        ("SubscriptionActivated", "period_end", "9999-12-31T23:59:59-23:59"),
        ("EngagementReported", "observed_at", "0001-01-01T00:00:00+01:00"),
    ],
)
async def test_a_data_time_that_overflows_in_utc_is_dead_lettered_and_the_key_flows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path, type_name: str, name: str, when: str
) -> None:
    org = uuid.uuid4()
    value = encode(broken_envelope(type_name, org, data={name: when}), ascii_only=True)
    fate, letter = await hostile_then_good(kafka, database_url, tmp_path, value, org=org)
    assert fate == "dead_lettered" and letter is not None
    assert letter["error_kind"] == "data", letter["error"]


async def test_an_unknown_type_with_a_nul_is_dead_lettered_and_the_key_flows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    org = uuid.uuid4()
    value = encode(broken_envelope("OrganizationCreated", org, type="Organization\x00Created"), ascii_only=True)
    fate, letter = await hostile_then_good(kafka, database_url, tmp_path, value, org=org)
    assert fate == "dead_lettered" and letter is not None
    # Not in the contract; a type with a control character may also be refused as a broken envelope.
    assert letter["error_kind"] in ("unknown_type", "envelope"), letter["error"]


async def test_an_invalid_event_with_a_nul_in_its_traceparent_is_dead_lettered_and_the_key_flows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    org = uuid.uuid4()
    value = envelope_value("OrganizationCreated", org, uuid.uuid4())
    del value["data"]["name"]
    headers = [("traceparent", (TRACEPARENT[:20] + "\x00" + TRACEPARENT[21:]).encode())]
    fate, letter = await hostile_then_good(
        kafka, database_url, tmp_path, encode(value, ascii_only=True), org=org, headers=headers
    )
    assert fate == "dead_lettered" and letter is not None
    assert letter["error_kind"] == "data", letter["error"]


@pytest.mark.parametrize("shape", ["bytes", "text of quotes"])
async def test_a_record_near_1_mb_is_dead_lettered_within_the_topics_limit_and_the_key_flows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path, shape: str
) -> None:
    # Its dead letter with the original inside (base64, or JSON-escaped) would pass 1 MB: the
    # topic gets a preview, the size and the sha256, the database keeps the whole original.
    org = uuid.uuid4()
    size = MAX_EVENT_BYTES - 4_000
    value = b"\xff" + os.urandom(size) if shape == "bytes" else b'"\\' * (size // 2)
    fate, letter = await hostile_then_good(kafka, database_url, tmp_path, value, org=org)
    assert fate == "dead_lettered" and letter is not None
    assert letter["error_kind"] == "decode", letter["error"]
    assert hashlib.sha256(value).hexdigest() in json.dumps(letter), "no sha256 of the original in its dead letter"


async def test_a_record_keyed_to_another_organization_is_dead_lettered_as_key_mismatch(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    value = envelope_value("OrganizationCreated", theirs, uuid.uuid4())
    fate, letter = await hostile_then_good(
        kafka, database_url, tmp_path, encode(value, ascii_only=True), org=mine, key=str(mine).encode()
    )
    assert fate == "dead_lettered" and letter is not None
    assert letter["error_kind"] == "key_mismatch", letter["error"]


@pytest.mark.parametrize(
    ("valid", "header"),
    [
        (True, ("x-upstream-note", b"\xff\xfe not UTF-8")),
        (False, ("x-upstream-note", b"\xff\xfe not UTF-8")),
        (True, ("traceparent", None)),
        (False, ("x-upstream-note", None)),
    ],
    ids=["valid, not UTF-8", "invalid, not UTF-8", "valid, null traceparent", "invalid, null header"],
)
async def test_a_header_value_that_is_not_utf8_or_null_does_not_stop_the_partition(
    kafka: KafkaSettings, database_url: str, tmp_path: Path, valid: bool, header: tuple[str, bytes | None]
) -> None:
    # Header values are bytes, or null (a Kafka header's value is nullable): neither may stop the
    # consumer before, while or after it reads the record.
    org = uuid.uuid4()
    value = envelope_value("OrganizationCreated", org, uuid.uuid4())
    if not valid:
        del value["data"]["name"]
    fate, letter = await hostile_then_good(
        kafka, database_url, tmp_path, encode(value, ascii_only=True), org=org, headers=[header]
    )
    assert fate == ("applied" if valid else "dead_lettered"), letter


async def test_json_nested_deeper_than_the_dead_letter_can_hold_is_dead_lettered_and_the_key_flows(
    kafka: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    # 256 to about 990 levels: deeper than the contract's parser reads (a decode error) and than
    # pydantic serializes, yet shallow enough for json.loads to hand the dead letter a document.
    org = uuid.uuid4()
    fate, letter = await hostile_then_good(kafka, database_url, tmp_path, nested(301).encode(), org=org)
    assert fate == "dead_lettered" and letter is not None
    assert letter["error_kind"] == "decode", letter["error"]


class _RawHeaderName(str):
    """A header name as a librdkafka producer may send it: bytes that are not UTF-8 (Kafka's
    brokers take them; aiokafka's producer would encode a str)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff\xfe" + str(self).encode(encoding, errors)


async def test_a_header_name_that_is_not_utf8_does_not_stop_the_partition(
    kafka: KafkaSettings, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiokafka's record decoder reads header names as strict UTF-8: the fetch itself fails, before
    # FastStream or the kernel see the record. The producer side is aiokafka's pure-Python record
    # builder, which writes the name's bytes as they are.
    from aiokafka.producer import message_accumulator
    from aiokafka.producer import producer as aiokafka_producer
    from aiokafka.record import default_records

    builder = default_records._DefaultRecordBatchBuilderPy
    monkeypatch.setattr(message_accumulator, "DefaultRecordBatchBuilder", builder)
    monkeypatch.setattr(aiokafka_producer, "DefaultRecordBatchBuilder", builder)
    org = uuid.uuid4()
    value = envelope_value("OrganizationCreated", org, uuid.uuid4())
    fate, letter = await hostile_then_good(
        kafka, database_url, tmp_path, encode(value, ascii_only=True), org=org, headers=[(_RawHeaderName("x"), b"v")]
    )
    assert fate in ("applied", "dead_lettered"), letter
