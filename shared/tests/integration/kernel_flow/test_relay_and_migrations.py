"""The outbox relay and the migrations, on the real broker and database: a crash between commit and
publish loses nothing, two relays publish each row once, a row Kafka refuses for good is parked
while the rest flows, and migrations apply once under concurrency and refuse edits. Through the
test service of conftest.py ("ledgerlet").
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hopcast_shared.db import Database
from hopcast_shared.outbox import OutboxRelay, OutboxRow, write_outbox
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import eventually, read_topic
from hopcast_shared.topics import ANALYTICS

pytestmark = pytest.mark.integration


async def test_a_crash_after_commit_and_before_publish_loses_nothing(
    database_url: str, migrations_dir: Path, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    # The business transaction commits its outbox row; the process dies before any relay ran.
    db = await Database.open(database_url)
    org = uuid.uuid4()
    async with db.transaction() as conn:
        [row] = ledgerlet.restored(kafka, org)
        await write_outbox(conn, [row])
    await db.close()

    # A new process starts: its relay finds the row and publishes it, once.
    db = await Database.open(database_url)

    producer_factory = ledgerlet.relay_producers(kafka)

    relay = OutboxRelay(db, producer_factory, service="test", poll_interval_s=0.1)
    await relay.start()
    try:
        out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
        assert [json.loads(r.value)["id"] for r in out] == [str(row.event_id)]
        assert await eventually(lambda: ledgerlet.outbox_empty(db))
    finally:
        await relay.stop()
        await db.close()


async def test_two_relays_publish_each_row_once(database_url: str, kafka: KafkaSettings, ledgerlet: Any) -> None:

    db = await Database.open(database_url)
    rows = [row for i in range(200) for row in ledgerlet.restored(kafka, uuid.UUID(int=i + 1))]
    async with db.transaction() as conn:
        await write_outbox(conn, rows)

    producer_factory = ledgerlet.relay_producers(kafka)

    relays = [OutboxRelay(db, producer_factory, service="test", batch_size=20, poll_interval_s=0.05) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:
        assert await eventually(lambda: ledgerlet.outbox_empty(db))
        out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=200)
        ids = [json.loads(r.value)["id"] for r in out]
        assert sorted(ids) == sorted(str(r.event_id) for r in rows)
        assert sum(r.published for r in relays) == 200
    finally:
        for relay in relays:
            await relay.stop()
        await db.close()


async def test_a_row_kafka_refuses_for_good_is_parked_and_the_rest_flows(
    database_url: str, kafka: KafkaSettings, ledgerlet: Any
) -> None:

    db = await Database.open(database_url)
    [good] = ledgerlet.restored(kafka, uuid.uuid4())
    huge = OutboxRow(uuid.uuid4(), "Huge", kafka.topic(ANALYTICS), b"k", b"x" * (3 * 1024 * 1024), [])
    async with db.transaction() as conn:
        await write_outbox(conn, [huge, good])

    producer_factory = ledgerlet.relay_producers(kafka)

    relay = OutboxRelay(db, producer_factory, service="test", poll_interval_s=0.05)
    await relay.start()
    try:
        out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
        assert [json.loads(r.value)["id"] for r in out] == [str(good.event_id)]
        parked = await eventually(
            lambda: db.pool.fetch("SELECT event_type, last_error FROM outbox WHERE parked_at IS NOT NULL")
        )
        assert parked[0]["event_type"] == "Huge" and "TooLarge" in parked[0]["last_error"]
    finally:
        await relay.stop()
        await db.close()


async def test_migrations_apply_once_under_concurrency_and_refuse_edits(
    database_url: str, migrations_dir: Path
) -> None:
    import asyncio

    from hopcast_shared.migrations import MigrationError, apply_migrations, kernel_migrations, load_migrations

    migrations = kernel_migrations() + load_migrations("svc", migrations_dir)
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(apply_migrations(c, migrations) for c in conns))
        assert sorted(len(a) for a in applied) == [0, 0, len(migrations)]
        assert await conns[0].fetchval("SELECT count(*) FROM schema_migrations") == len(migrations)
        (migrations_dir / "0001_organizations.sql").write_text("CREATE TABLE changed (id int);")
        with pytest.raises(MigrationError, match="forward-only"):
            await apply_migrations(conns[0], kernel_migrations() + load_migrations("svc", migrations_dir))
    finally:
        for c in conns:
            await c.close()
