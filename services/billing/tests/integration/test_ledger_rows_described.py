"""Every ledger row says which subscription's period credits it moves and what it was for
(issue 22): written by each kind of event through Kafka, shown by the ledger read and by
`hopcast billing verify` (table and --json), and filled by migration 0008 for the rows written
before it, while the ledger stays append-only.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from hopcast_billing.adapters.ledger import balance_of
from hopcast_billing.bootstrap import MIGRATIONS
from hopcast_billing.entrypoints.cli import app
from hopcast_billing.entrypoints.http import routes
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import as_record, eventually, read_events, send_event
from hopcast_shared.topics import BILLING, CONTENT, PUBLISHER, UPSTREAM

pytestmark = pytest.mark.integration


class _Runtime:
    def __init__(self, db: Database) -> None:
        self.db = db


async def _ledger_read(db: Database, org: str) -> list[dict[str, Any]]:
    """The organization's whole ledger through the HTTP read's handler, oldest first."""
    ledger = {r.template: r for r in routes(_Runtime(db))}["/organizations/{id}/ledger"]  # type: ignore[arg-type]
    answer = await ledger.handler({"id": org}, {"limit": "500"})
    assert answer.status == 200
    return list(reversed(answer.body["entries"]))


async def test_each_kind_of_row_through_kafka_names_its_subscription_and_says_what_it_was_for(
    billing: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings, new_org: Any
) -> None:
    org = new_org()
    subscription = str(uuid.uuid4())
    await send_event(producer, kafka, UPSTREAM, org.period(2, datetime(2027, 1, 1, tzinfo=UTC), subscription))
    await send_event(producer, kafka, UPSTREAM, org.event("CreditsGranted", grant_id=str(uuid.uuid4()), amount=4))

    async def credited() -> bool:
        return (await balance_of(billing.db.pool, uuid.UUID(org.id))).total == 6  # type: ignore[arg-type]

    await eventually(credited)
    post = org.post(["TWITTER", "LINKEDIN"])  # 1 GENERATE + 2 PUBLISH: 2 from the period, 1 from top-ups
    await send_event(producer, kafka, CONTENT, post)
    await read_events(kafka, kafka.topic(BILLING), expect=1, event_type="CreditsDebited")
    await send_event(producer, kafka, PUBLISHER, org.failed(post, "TWITTER"))
    await read_events(kafka, kafka.topic(BILLING), expect=1, event_type="CreditsRefunded")

    rows = await _ledger_read(billing.db, org.id)  # type: ignore[arg-type]
    assert [(r["action"], r["description"]) for r in rows] == [
        ("SUBSCRIPTION", "Subscription STARTER period credits"),
        ("TOPUP", "Top-up grant: spring promotion"),
        ("GENERATE", "Credit deduction for GENERATE"),
        ("PUBLISH", "Credit deduction for PUBLISH on TWITTER, LINKEDIN"),
        ("REFUND", "Refund: PUBLISH_FAILED on TWITTER"),
    ]
    # The subscription is named exactly where the row moves period credits; top-ups name none.
    for r in rows:
        assert r["subscription_id"] == (subscription if r["period_amount"] else None), r
    assert [r["subscription_id"] for r in rows[:4]] == [subscription, None, subscription, subscription]


async def test_verify_shows_each_organizations_subscription_and_last_row_in_its_table_and_json(
    db: Database, consumer: EventConsumer, database_url: str, monkeypatch: pytest.MonkeyPatch, new_org: Any
) -> None:
    org = new_org()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    start = datetime(2027, 1, 1, tzinfo=UTC)
    await consumer.handle_record(as_record(org.period(10, start, first)))
    await consumer.handle_record(as_record(org.post(["TWITTER"]), topic=CONTENT))
    renewal = org.event(
        "SubscriptionActivated",
        subscription_id=second,
        plan="GROWTH",
        credits_total=1000,
        period_start=(start + timedelta(days=31)).isoformat(),
        period_end=(start + timedelta(days=59)).isoformat(),
    )
    await consumer.handle_record(as_record(renewal))

    rows = await _ledger_read(db, org.id)
    # The unused credits expire under the subscription they were granted by, before the new one starts.
    assert [(r["description"], r["subscription_id"], r["amount"]) for r in rows[-2:]] == [
        ("Subscription STARTER period credits expired unused", first, -8),
        ("Subscription GROWTH period credits", second, 1000),
    ]

    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    result = await asyncio.to_thread(CliRunner().invoke, app, ["verify", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    [mine] = [o for o in report["organizations"] if o["organization_id"] == org.id]
    assert mine["status"] == "OK" and mine["subscription_id"] == second and mine["plan"] == "GROWTH"
    assert mine["balance"] == {"period": 1000, "topup": 0}
    assert mine["ledger"] == {"period": 1000, "topup": 0, "entries": 5}
    assert mine["last_entry"]["description"] == "Subscription GROWTH period credits"
    assert mine["last_entry"]["subscription_id"] == second
    assert report["mismatches"] == 0

    table = await asyncio.to_thread(CliRunner().invoke, app, ["verify"])
    assert table.exit_code == 0, table.output
    [line] = [line for line in table.output.splitlines() if line.startswith(org.id)]
    assert " OK " in line and f"GROWTH {second}" in line and line.endswith("Subscription GROWTH period credits")
    assert table.output.splitlines()[0].split()[:2] == ["organization", "status"]


def _key_start(when: datetime) -> str:
    return when.isoformat()


async def test_migration_0008_fills_the_rows_written_before_it_and_the_ledger_stays_append_only(
    database_url: str,
) -> None:
    every = load_migrations("billing", MIGRATIONS)
    before = await Database.open(database_url, [m for m in every if m.version <= 7])
    org, old_sub, sub = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    grant, post, rejected, timed_out, expired = (uuid.uuid4() for _ in range(5))
    january, february = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    try:
        await before.pool.execute(
            """
            INSERT INTO subscriptions (organization_id, subscription_id, plan, credits_total, period_start, period_end)
            VALUES ($1, $2, 'GROWTH', 100, $3::timestamptz, $3::timestamptz + interval '28 days')
            """,
            org,
            sub,
            february,
        )
        await before.pool.execute(
            """
            INSERT INTO debits (pending_post_id, organization_id, run_id, schedule_id, brand_profile_id, platforms,
                                status, generate_amount, publish_amount)
            VALUES ($1, $2, $3, $3, $3, '{TWITTER,LINKEDIN}', 'DEBITED', 1, 2)
            """,
            post,
            org,
            uuid.uuid4(),
        )
        # The rows as the code before 0008 wrote them (adapters/ledger.py's keys), oldest first.
        old_rows = [
            ("SUBSCRIPTION", 10, 0, f"period:{old_sub}:{_key_start(january)}", None, None),
            ("TOPUP", 0, 5, f"grant:{grant}", None, None),
            ("GENERATE", -1, 0, f"debit:{post}:GENERATE", post, None),
            ("PUBLISH", -1, -1, f"debit:{post}:PUBLISH", post, None),
            ("REFUND", 0, 1, f"refund:{post}:TWITTER", post, "TWITTER"),
            ("SUBSCRIPTION", -8, 0, f"expire:{sub}:{_key_start(february)}", None, None),
            ("SUBSCRIPTION", 100, 0, f"period:{sub}:{_key_start(february)}", None, None),
            ("REFUND", 1, 0, f"reject:{rejected}", rejected, None),
            ("REFUND", 1, 0, f"timeout:{timed_out}", timed_out, None),
            ("REFUND", 0, 2, f"expire:{expired}", expired, None),
        ]
        balance = 0
        for action, period, topup, key, pending, platform in old_rows:
            balance += period + topup
            await before.pool.execute(
                """
                INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                                    balance_after, pending_post_id, platform)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """,
                org,
                action,
                period,
                topup,
                key,
                balance,
                pending,
                platform,
            )
    finally:
        await before.close()

    after = await Database.open(database_url, every)
    try:
        rows = await after.pool.fetch(
            "SELECT subscription_id, description FROM ledger WHERE organization_id = $1 ORDER BY id", org
        )
        assert [(r["subscription_id"], r["description"]) for r in rows] == [
            (old_sub, "Subscription period credits"),  # a plan billing no longer holds is not guessed
            (None, f"Top-up grant {grant}"),
            (old_sub, "Credit deduction for GENERATE"),
            (old_sub, "Credit deduction for PUBLISH on TWITTER, LINKEDIN"),
            (None, "Refund: PUBLISH_FAILED on TWITTER"),
            (old_sub, "Subscription period credits expired unused"),
            (sub, "Subscription GROWTH period credits"),
            (sub, "Refund: PENDING_POST_REJECTED"),
            (sub, "Refund: RUN_TIMED_OUT"),
            (None, "Refund: PENDING_POST_EXPIRED"),
        ]
        # The trigger is back: no row can be changed.
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await after.pool.execute("UPDATE ledger SET description = 'x' WHERE organization_id = $1", org)
        # A billing of the previous release, still running while a rollout goes on, writes rows
        # without the new columns: they are described on insert, the same way.
        late = uuid.uuid4()
        described = await after.pool.fetchrow(
            """
            INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                                balance_after, pending_post_id)
            VALUES ($1, 'GENERATE', -1, 0, $2, 0, $3)
            RETURNING subscription_id, description
            """,
            org,
            f"debit:{late}:GENERATE",
            late,
        )
        assert described is not None
        assert (described["subscription_id"], described["description"]) == (sub, "Credit deduction for GENERATE")
    finally:
        await after.close()
