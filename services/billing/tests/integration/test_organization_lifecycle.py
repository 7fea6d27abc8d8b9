"""Billing and the GDPR lifecycle on the real database: a deleted organization is never debited,
a restored one is again, and its ledger, debits, balance and subscription are purged once it has
been deleted longer than the retention; a live organization's ledger stays append-only."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from hopcast_billing.adapters.ledger import balance_of, purge, verify_all
from hopcast_billing.bootstrap import MIGRATIONS, definition
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, eventually
from hopcast_shared.topics import CONTENT

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("billing", MIGRATIONS))
    yield database
    await database.close()


@pytest.fixture
def consumer(db: Database, database_url: str, stack: Any) -> EventConsumer:
    settings = ServiceSettings(
        name="billing", database_url=database_url, http_port=18083, handler_backoff_initial_s=0.01
    )
    return EventConsumer("billing", db, definition().handlers, kafka=stack.kafka_settings, settings=settings)


class Org:
    """One organization with a subscription of 300 credits, as upstream creates it."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        self.id = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.id, **changes)

    async def send(self, event: Any, topic: str = "upstream.events") -> None:
        assert await self.consumer.handle_record(as_record(event, topic=topic)) == "handled"

    async def create(self) -> Org:
        await self.send(self.event("OrganizationCreated"))
        start = datetime(2027, 3, 1, tzinfo=UTC)
        await self.send(
            self.event(
                "SubscriptionActivated",
                subscription_id=str(uuid.uuid4()),
                plan="STARTER",
                credits_total=300,
                period_start=start.isoformat(),
                period_end=start.replace(month=4).isoformat(),
            )
        )
        return self

    async def post(self) -> str:
        """A drafted post on two platforms (3 credits); returns its run id."""
        run_id = str(uuid.uuid4())
        post = self.event(
            "PendingPostCreated", pending_post_id=str(uuid.uuid4()), run_id=run_id, platforms=["TWITTER", "LINKEDIN"]
        )
        await self.send(post, CONTENT)
        return run_id


async def _events(db: Database, event_type: str, run_id: str) -> list[dict[str, Any]]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [e for e in (json.loads(r["payload"]) for r in rows) if e["data"].get("run_id") == run_id]


async def _balance(db: Database, org: Org) -> int:
    return (await balance_of(db.pool, uuid.UUID(org.id))).total  # type: ignore[arg-type]


async def test_a_deleted_organization_is_never_debited_and_a_restored_one_is(
    db: Database, consumer: EventConsumer
) -> None:
    org = await Org(consumer).create()
    await org.send(org.event("OrganizationDeleted"))

    run_id = await org.post()
    assert await _events(db, "CreditsDebited", run_id) == []
    (rejected,) = await _events(db, "CreditsDebitRejected", run_id)
    assert rejected["data"]["reason"] == "ORGANIZATION_INACTIVE"
    assert (rejected["data"]["requested"], rejected["data"]["available"]) == (3, 300)
    (completed,) = await _events(db, "ScheduleRunCompleted", run_id)
    assert completed["data"]["outcome"] == "ORGANIZATION_INACTIVE"
    assert await _balance(db, org) == 300
    assert await db.pool.fetchval("SELECT count(*) FROM ledger WHERE action IN ('GENERATE', 'PUBLISH')") == 0

    await org.send(org.event("OrganizationRestored"))
    run_id = await org.post()
    (debited,) = await _events(db, "CreditsDebited", run_id)
    assert debited["data"]["amount"] == 3 and debited["data"]["balance_after"] == 297
    assert await _events(db, "ScheduleRunCompleted", run_id) == []  # the publisher ends this run
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_purge_deletes_what_billing_holds_of_organizations_deleted_longer_ago_than_the_retention(
    db: Database, consumer: EventConsumer
) -> None:
    old = await Org(consumer).create()
    recent = await Org(consumer).create()
    live = await Org(consumer).create()
    for org in (old, recent, live):
        await org.post()
    for org in (old, recent):
        await org.send(org.event("OrganizationDeleted"))
    await db.pool.execute(
        "UPDATE organizations SET deleted_at = now() - interval '31 days' WHERE id = $1", uuid.UUID(old.id)
    )

    async with db.transaction() as conn:
        counts = await purge(conn, 30)
    # The old one's subscription row, balance row, one debit, and ledger: the period credit,
    # GENERATE and PUBLISH.
    assert counts == {
        "ledger": 3,
        "debits": 1,
        "balances": 1,
        "subscriptions": 1,
        "run_deadlines": 0,
        "organizations": 1,
    }
    for table, column in (
        ("ledger", "organization_id"),
        ("debits", "organization_id"),
        ("balances", "organization_id"),
        ("subscriptions", "organization_id"),
        ("organizations", "id"),
    ):
        left = {str(r[0]) for r in await db.pool.fetch(f"SELECT DISTINCT {column} FROM {table}")}
        assert left == {recent.id, live.id}, table
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]
    async with db.transaction() as conn:
        assert set((await purge(conn, 30)).values()) == {0}

    # A live organization's ledger stays append-only.
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.pool.execute("DELETE FROM ledger WHERE organization_id = $1", uuid.UUID(live.id))
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.pool.execute("UPDATE ledger SET balance_after = 0")


async def test_an_organization_restored_after_the_purge_starts_again_empty(
    db: Database, consumer: EventConsumer
) -> None:
    org = await Org(consumer).create()
    await org.send(org.event("OrganizationDeleted"))
    await db.pool.execute("UPDATE organizations SET deleted_at = now() - interval '31 days'")
    async with db.transaction() as conn:
        await purge(conn, 30)
    await org.send(org.event("OrganizationRestored"))
    run_id = await org.post()
    (rejected,) = await _events(db, "CreditsDebitRejected", run_id)
    assert rejected["data"]["reason"] == "NO_SUBSCRIPTION"


async def test_the_running_service_purges_on_its_own(db: Database, database_url: str, kafka: KafkaSettings) -> None:
    """The purge job runs in the service (and purges the inbox's ids Kafka can no longer redeliver)."""
    gone, kept = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as conn:
        for org, days in ((gone, 31), (kept, 29)):
            await conn.execute(
                "INSERT INTO organizations (id, deleted_at) VALUES ($1, now() - make_interval(days => $2))", org, days
            )
        await conn.execute(
            """INSERT INTO inbox (consumer, message_id, outcome, handled_at)
               VALUES ('billing', 'old', 'handled', now() - interval '31 days'), ('billing', 'new', 'handled', now())"""
        )
    settings = ServiceSettings(name="billing", database_url=database_url, http_port=18083)

    async def purged() -> bool:
        orgs = {r["id"] for r in await db.pool.fetch("SELECT id FROM organizations")}
        inbox = {r["message_id"] for r in await db.pool.fetch("SELECT message_id FROM inbox")}
        return orgs == {kept} and "old" not in inbox and "new" in inbox

    async with ServiceRuntime(definition(), settings=settings, kafka=kafka):
        await eventually(purged, within=30)
