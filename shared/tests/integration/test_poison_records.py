"""Records that used to stop a partition for good, handed to the real consumer on a real database:
each is dead-lettered at once with its reason, kept whole in `dead_letters`, and the good event
behind it is handled. And organizations cannot touch each other through event ids or keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import OrganizationCreated, new_event
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.dlq import DLQ_MAX_MESSAGE_BYTES, DeadLetter, replay_stored, stored_dead_letters
from hopcast_shared.handling import EventContext
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.logs import JsonFormatter
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, read_topic, recorded_spans
from hopcast_shared.topics import UPSTREAM, TopicSpec, dlq_topic, ensure_topics

pytestmark = pytest.mark.integration

SERVICE = "poisoned"
PREFIX_FREE_UPSTREAM = "upstream.events"


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    (tmp_path / "0001_organizations.sql").write_text(
        "CREATE TABLE organizations (id uuid PRIMARY KEY, name text NOT NULL, event_id uuid NOT NULL);"
    )
    from hopcast_shared.migrations import load_migrations

    database = await Database.open(database_url, migrations=load_migrations(SERVICE, tmp_path))
    yield database
    await database.close()


@pytest.fixture
def consumer(db: Database, kafka: KafkaSettings, database_url: str) -> EventConsumer:
    async def organization_created(ctx: EventContext, data: OrganizationCreated) -> None:
        await ctx.conn.execute(
            "INSERT INTO organizations (id, name, event_id) VALUES ($1, $2, $3)",
            data.organization_id,
            data.name,
            ctx.envelope.id,
        )

    settings = ServiceSettings(
        name=SERVICE,
        database_url=database_url,
        http_port=18081,
        handler_max_attempts=3,
        handler_backoff_initial_s=0.01,
        handler_backoff_max_s=0.02,
    )
    return EventConsumer(SERVICE, db, {"OrganizationCreated": organization_created}, kafka=kafka, settings=settings)


def _created(org: uuid.UUID, name: str, **envelope: Any) -> dict[str, Any]:
    event = new_event(OrganizationCreated(organization_id=org, name=name), organization_id=org, source="upstream/t")
    document: dict[str, Any] = json.loads(event.to_json())
    document.update(envelope)
    return document


def _record(
    kafka: KafkaSettings, value: bytes | None, key: bytes | None, headers: Any = ()
) -> ConsumerRecord[Any, Any]:
    import dataclasses

    record = as_record(value or b"", topic=kafka.topic(UPSTREAM), headers=list(headers))
    return dataclasses.replace(record, key=key, value=value)


async def _names(db: Database) -> list[str]:
    return [r["name"] for r in await db.pool.fetch("SELECT name FROM organizations ORDER BY name")]


def _poison(org: uuid.UUID) -> dict[str, tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]], str]]:
    """name -> (value, key, headers, the dead letter's kind): each once stopped its partition."""
    key = str(org).encode()
    unknown = _created(org, "x", type="Org\x00Created")
    invalid = _created(org, "x")
    del invalid["data"]["name"]
    near_limit = _created(org, "x")
    near_limit["data"]["padding"] = "\x01" * 170_000  # six bytes each as JSON: 1.02 MB in all
    del near_limit["data"]["name"]
    return {
        "time after year 9999 in UTC": (
            json.dumps(_created(org, "x", time="9999-12-31T23:59:59-23:59")).encode(),
            key,
            [],
            "envelope",
        ),
        "time before year 1 in UTC": (
            json.dumps(_created(org, "x", time="0001-01-01T00:00:00+01:00")).encode(),
            key,
            [],
            "envelope",
        ),
        "a type with NUL": (json.dumps(unknown).encode(), key, [], "unknown_type"),
        "a NUL in traceparent": (
            json.dumps(invalid).encode(),
            key,
            [("traceparent", b"00-\x00"), ("x-h", b"\xff\x00")],
            "data",
        ),
        "a null header value": (json.dumps(invalid).encode(), key, [("traceparent", None), ("x-none", None)], "data"),
        "a null value": (None, key, [], "decode"),
        "1 MB of bytes that are not text": (b"\xff" * 1_000_000, key, [], "decode"),
        "near 1 MB": (json.dumps(near_limit).encode(), key, [], "data"),
        "a key that is not the organization": (
            json.dumps(_created(org, "x")).encode(),
            str(uuid.uuid4()).encode(),
            [],
            "key_mismatch",
        ),
        "no key": (json.dumps(_created(org, "x")).encode(), None, [], "key_mismatch"),
    }


@pytest.mark.parametrize("name", list(_poison(uuid.uuid4())))
async def test_a_record_that_stopped_a_partition_is_dead_lettered_and_the_next_flows(
    name: str, consumer: EventConsumer, db: Database, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    value, key, headers, kind = _poison(org)[name]
    good = _created(org, "Good")
    records = [_record(kafka, value, key, headers), _record(kafka, json.dumps(good).encode(), str(org).encode())]

    assert await consumer.handle_batch(records) == ["dead_lettered", "handled"]
    assert await _names(db) == ["Good"]
    [stored] = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    assert stored.error_kind == kind
    # Kept as it came: the bytes, the key and the headers, whatever they hold.
    assert stored.value == value and stored.key == key
    assert stored.headers == headers
    assert stored.value_sha256 == hashlib.sha256(value or b"").hexdigest()
    row = await db.pool.fetchrow("SELECT payload FROM outbox WHERE topic = $1", kafka.topic(dlq_topic(SERVICE)))
    assert row is not None and len(row["payload"]) <= DLQ_MAX_MESSAGE_BYTES
    letter = DeadLetter.model_validate_json(row["payload"])
    assert (letter.error_kind, letter.original_size) == (kind, len(value or b""))
    # Delivered again (the offset was not committed yet): recognised, no second dead letter.
    assert await consumer.handle_batch(records) == ["dead_lettered", "duplicate"]
    assert len(await stored_dead_letters(db.pool)) == 1  # type: ignore[arg-type]


async def test_a_round_s_refused_records_share_one_transaction_beside_the_good_events(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = uuid.uuid4()
    # The small ones: a megabyte of originals is written without waiting for more (tested below).
    poison = [p for p in _poison(org).values() if len(p[0] or b"") < 100_000]
    records, expected = [], []
    for n, (value, key, headers, _) in enumerate(poison):
        records.append(_record(kafka, value, key, headers))
        records.append(_record(kafka, json.dumps(_created(uuid.uuid4(), f"Good {n}")).encode(), None))
        records[-1] = dataclasses.replace(
            records[-1], key=str(json.loads(records[-1].value)["organizationid"]).encode()
        )
        expected += ["dead_lettered", "handled"]

    # The first refused record again at the end of the batch: recognised, not written twice.
    assert await consumer.handle_batch([*records, records[0]]) == [*expected, "dead_lettered"]
    assert len(await _names(db)) == len(poison)
    # The dead letters of each of the round's lanes (records of different keys are handled side
    # by side) were written together: their rows share a transaction id, one that is not the good
    # events' (handled in transactions of their own).
    lanes = {zlib.crc32(key or b"") % consumer._settings.consumer_lanes for _, key, _, _ in poison}
    transactions = await db.pool.fetch("SELECT DISTINCT xmin::text AS x FROM dead_letters")
    assert len(transactions) == len(lanes) < len(poison)
    handled = await db.pool.fetch("SELECT DISTINCT xmin::text AS x FROM organizations")
    assert {r["x"] for r in handled}.isdisjoint(r["x"] for r in transactions)
    assert sorted(r.error_kind for r in await stored_dead_letters(db.pool)) == sorted(  # type: ignore[arg-type]
        kind for *_, kind in poison
    )
    outbox = await db.pool.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", kafka.topic(dlq_topic(SERVICE)))
    assert outbox == len(poison)
    # The whole batch delivered again: every refused record recognised, nothing written anew.
    assert await consumer.handle_batch(records) == [
        "dead_lettered" if outcome == "dead_lettered" else "duplicate" for outcome in expected
    ]
    assert await db.pool.fetchval("SELECT count(*) FROM dead_letters") == len(poison)
    assert await db.pool.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", kafka.topic(dlq_topic(SERVICE))) in (
        0,  # the relay may have sent them since
        len(poison),
    )


async def test_large_refused_records_are_dead_lettered_a_megabyte_at_a_time_each_with_its_span(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01".encode()
    large = _created(org, "x")
    large["data"]["name"] = [[]] * 150_000  # 600 KB of JSON, tens of MB as a dead letter is made
    records = [_record(kafka, json.dumps(large).encode(), str(org).encode(), [("traceparent", parent)])] * 3
    records = [dataclasses.replace(r, offset=r.offset + n) for n, r in enumerate(records)]
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter(SERVICE).format(record))  # type: ignore[method-assign]
    logging.getLogger("hopcast_shared.consumer").addHandler(handler)
    try:
        with recorded_spans() as exporter:
            assert await consumer.handle_batch(records) == ["dead_lettered"] * 3
    finally:
        logging.getLogger("hopcast_shared.consumer").removeHandler(handler)
    # Past a megabyte of originals, a lane's refused records are written without waiting for more.
    assert await db.pool.fetchval("SELECT count(DISTINCT xmin::text) FROM dead_letters") == 2
    assert await db.pool.fetchval("SELECT count(*) FROM dead_letters") == 3
    # Each record has its span, in the producer's trace, and its log line names that span.
    spans = [s for s in exporter.get_finished_spans() if s.attributes and s.attributes.get("hopcast.outcome")]
    assert len(spans) == 3
    assert {format(s.context.trace_id, "032x") for s in spans} == {trace_id}
    assert sorted(s.attributes["messaging.kafka.offset"] for s in spans) == [r.offset for r in records]  # type: ignore[index]
    logged = [json.loads(line) for line in lines if "dead-lettered" in line]
    assert sorted(entry["span_id"] for entry in logged) == sorted(format(s.context.span_id, "016x") for s in spans)


async def test_a_replay_sends_a_key_s_records_back_in_their_order(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    values = [json.dumps(_created(org, "x", type=f"Unknown{n}")).encode() for n in range(3)]
    records = [_record(kafka, value, str(org).encode()) for value in values]
    for record in reversed(records):  # dead-lettered in the reverse of their order
        assert await consumer.handle_batch([record]) == ["dead_lettered"]
    letters = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    assert [letter.value for letter in letters] == values[::-1]
    async with db.pool.acquire() as conn:
        assert await replay_stored(kafka, conn, letters) == 3
    assert [r.value for r in await read_topic(kafka, kafka.topic(UPSTREAM), expect=3)] == values


async def test_should_a_batch_of_dead_letters_fail_each_is_written_alone(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hopcast_shared import consumer as consumer_module

    org = uuid.uuid4()
    poison = list(_poison(org).values())
    store = consumer_module.store_dead_letters
    batches: list[int] = []

    async def no_batches(conn: Any, letters: Any) -> None:
        batches.append(len(letters))
        if len(letters) > 1:
            raise RuntimeError("a batch of dead letters could not be written")
        await store(conn, letters)

    monkeypatch.setattr(consumer_module, "store_dead_letters", no_batches)
    records = [_record(kafka, value, key, headers) for value, key, headers, _ in poison]
    assert await consumer.handle_batch(records) == ["dead_lettered"] * len(poison)
    assert max(batches) > 1 and batches.count(1) == len(poison)  # a lane's batch failed, then each alone
    stored = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    assert sorted((s.source_offset, s.error_kind) for s in stored) == sorted(
        (r.offset, kind) for r, (*_, kind) in zip(records, poison, strict=True)
    )
    # Each alone: one transaction a dead letter, nothing of the failed batch left behind.
    assert await db.pool.fetchval("SELECT count(DISTINCT xmin::text) FROM dead_letters") == len(poison)


async def test_a_dead_letter_past_the_topic_limit_carries_a_preview_and_is_replayed_whole(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings, producer: AIOKafkaProducer
) -> None:
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    org = uuid.uuid4()
    value, key, headers, _ = _poison(org)["near 1 MB"]
    assert value is not None
    record = _record(kafka, value, key, headers)
    assert await consumer.handle_batch([record]) == ["dead_lettered"]

    payload = await db.pool.fetchval("SELECT payload FROM outbox")
    letter = DeadLetter.model_validate_json(payload)
    assert letter.original_json is None and letter.original_preview is not None
    assert letter.original_size == len(value)
    assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
    with pytest.raises(ValueError, match="preview only"):
        letter.original_bytes()

    # The replay sends the whole original from the database, byte for byte.
    letters = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    async with db.pool.acquire() as conn:
        assert await replay_stored(kafka, conn, letters) == 1
    [replayed] = await read_topic(kafka, kafka.topic(UPSTREAM), expect=1)
    assert replayed.value == value and replayed.key == key
    [after] = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    assert after.replays == 1 and after.replayed_at is not None


async def test_a_plaintext_secret_is_masked_in_the_stored_dead_letter(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings
) -> None:
    org = uuid.uuid4()
    event: dict[str, Any] = json.loads(example_event("SocialAccountConnected", organization_id=org).to_json())
    event["data"]["access_token"] = "ya29.plaintext-secret-token-value"  # noqa: S105 (made up)
    value = json.dumps(event).encode()
    headers = [("Authorization", b"Bearer abcdefghijklmnop"), ("x-trace", b"kept")]
    assert await consumer.handle_batch([_record(kafka, value, str(org).encode(), headers)]) == ["ignored"]
    # Not handled here, so not judged: the service that handles it would dead-letter it. Its own
    # dead letter path is the same function; drive it directly.
    await consumer._dead_letter(_record(kafka, value, str(org).encode(), headers), None, None, "data", "e", attempts=0)
    [stored] = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    assert stored.redacted
    assert stored.value is not None and b"ya29.plaintext" not in stored.value
    assert dict(stored.headers) == {"Authorization": b"[REDACTED]", "x-trace": b"kept"}
    payload = await db.pool.fetchval("SELECT payload FROM outbox")
    assert b"ya29.plaintext" not in payload and b"abcdefghijklmnop" not in payload


async def test_another_organization_reusing_an_event_id_is_not_a_duplicate(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    shared_id = str(uuid.uuid4())
    first = _created(a, "A", id=shared_id)
    second = _created(b, "B", id=shared_id)
    records = [
        _record(kafka, json.dumps(first).encode(), str(a).encode()),
        _record(kafka, json.dumps(second).encode(), str(b).encode()),
    ]
    assert await consumer.handle_batch(records) == ["handled", "handled"]
    assert await _names(db) == ["A", "B"]
    # One at a time, too (the path of a record handled alone).
    c = uuid.uuid4()
    assert (
        await consumer.handle_record(
            _record(kafka, json.dumps(_created(c, "C", id=shared_id)).encode(), str(c).encode())
        )
        == "handled"
    )
    # Within one organization, the id is still the inbox key.
    again = _created(a, "A again", id=shared_id)
    assert await consumer.handle_record(_record(kafka, json.dumps(again).encode(), str(a).encode())) == "duplicate"
    assert await _names(db) == ["A", "B", "C"]


async def test_a_key_that_is_not_the_organization_changes_nothing_of_either(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    forged = _created(a, "Forged")
    outcomes = await consumer.handle_batch([_record(kafka, json.dumps(forged).encode(), str(b).encode())])
    assert outcomes == ["dead_lettered"]
    assert await _names(db) == []
    # A's own event with that id is then handled as A's, not as a duplicate of the forgery.
    assert await consumer.handle_record(_record(kafka, json.dumps(forged).encode(), str(a).encode())) == "handled"
    assert await _names(db) == ["Forged"]


async def test_the_commands_show_every_dead_letter_and_release_parked_outbox_rows(
    consumer: EventConsumer, db: Database, kafka: KafkaSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from hopcast_shared.dlq_cli import app, outbox_app

    org = uuid.uuid4()
    for name in ("near 1 MB", "a type with NUL", "1 MB of bytes that are not text"):
        value, key, headers, _ = _poison(org)[name]
        assert await consumer.handle_batch([_record(kafka, value, key, headers)]) == ["dead_lettered"]
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO outbox (event_id, event_type, topic, payload, parked_at, last_error)"
            " VALUES ($1, 'Huge', 't', 'x', now(), 'MessageSizeTooLargeError')",
            uuid.uuid4(),
        )
    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    runner = CliRunner()

    listed = await asyncio.to_thread(runner.invoke, app, ["list", "billing", "--json"])
    assert listed.exit_code == 0, listed.output
    letters = [json.loads(line) for line in listed.output.splitlines()]
    assert sorted(x["error_kind"] for x in letters) == ["data", "decode", "unknown_type"]
    assert max(x["value_size"] for x in letters) > DLQ_MAX_MESSAGE_BYTES
    assert all("\x00" not in (x["event_type"] or "") for x in letters)
    dry = await asyncio.to_thread(runner.invoke, app, ["replay", "billing", "--pending", "--dry-run"])
    assert dry.output.strip() == "would replay 3 dead letter(s) of billing"

    parked = await asyncio.to_thread(runner.invoke, outbox_app, ["list", "billing", "--json"])
    assert [json.loads(line)["event_type"] for line in parked.output.splitlines()] == ["Huge"]
    retried = await asyncio.to_thread(runner.invoke, outbox_app, ["retry", "billing"])
    assert retried.output.strip() == "retrying 1 parked row(s) of billing"
    assert await db.pool.fetchval("SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL") == 0


class _NotUtf8(str):
    """A header key that a producer writes as bytes that are not UTF-8 (the broker takes them)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"x-\xff\xfe"


async def test_a_header_key_that_is_not_utf8_is_read_and_dead_lettered_verbatim(
    consumer: EventConsumer,
    db: Database,
    kafka: KafkaSettings,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aiokafka's own Python builder writes the key's bytes as `encode` gives them.
    from aiokafka.producer import message_accumulator
    from aiokafka.producer import producer as producer_module
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

    org = uuid.uuid4()
    good = json.dumps(_created(org, "Good")).encode()
    odd = json.dumps(_created(org, "x")).encode()
    for module in (message_accumulator, producer_module):
        monkeypatch.setattr(module, "DefaultRecordBatchBuilder", _DefaultRecordBatchBuilderPy)
    raw_producer = AIOKafkaProducer(**connection_kwargs(kafka))
    await raw_producer.start()
    try:
        await raw_producer.send_and_wait(
            kafka.topic(UPSTREAM),
            odd,
            key=str(org).encode(),
            headers=[(_NotUtf8("k"), b"v")],
        )
    finally:
        await raw_producer.stop()
    monkeypatch.undo()
    await producer.send_and_wait(kafka.topic(UPSTREAM), good, key=str(org).encode())

    # aiokafka alone raised UnicodeDecodeError on every fetch of this partition, for good.
    records = await read_topic(kafka, kafka.topic(UPSTREAM), expect=2)
    assert [r.value for r in records] == [odd, good]
    first = records[0]
    assert first.headers[0][0].encode("utf-8", "surrogateescape") == b"x-\xff\xfe"
    # The header is not the contract's business: the event itself is valid and handled.
    assert await consumer.handle_batch([first]) == ["handled"]
    # Dead-lettered (say, by a handler's refusal), its header key is kept as the bytes it was.
    await consumer._dead_letter(first, None, None, "rejected", "e", attempts=1)
    [stored] = await stored_dead_letters(db.pool)  # type: ignore[arg-type]
    assert stored.headers == [("x-\udcff\udcfe", b"v")]
    row = await db.pool.fetchrow("SELECT header_keys FROM dead_letters")
    assert row is not None and row["header_keys"] == [b"x-\xff\xfe"]
