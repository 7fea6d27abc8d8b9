"""Billing on one real database, shared by this folder's tests: `consumer` handles events as the
service's own consumer does (inbox, outbox, dead letters), `new_org` makes an organization that
sends upstream's, content's and the publisher's events, and `books` reads what the ledger and
the outbox hold. `billing` runs the whole service through Kafka.

Test modules cannot import each other (--import-mode=importlib): what they share is here.
(test_organization_lifecycle.py keeps a `db` and a `consumer` of its own.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from hopcast_billing.bootstrap import MIGRATIONS, definition
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings


def _settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(
        name="billing",
        database_url=database_url,
        http_port=18083,
        handler_backoff_initial_s=0.01,
        handler_max_attempts=10,
        outbox_poll_interval_s=0.2,
        db_pool_max=20,
    )


class Org:
    def __init__(self) -> None:
        self.id = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.id, **changes)

    def post(self, platforms: list[str], pending_post_id: str | None = None) -> Any:
        return self.event(
            "PendingPostCreated",
            pending_post_id=pending_post_id or str(uuid.uuid4()),
            run_id=str(uuid.uuid4()),
            platforms=platforms,
        )

    def failed(self, post: Any, platform: str) -> Any:
        """The publisher's PostPublishFailed for one platform of a pending post."""
        return self.event(
            "PostPublishFailed",
            pending_post_id=post.data["pending_post_id"],
            run_id=post.data["run_id"],
            platform=platform,
        )

    def run_ended(self, post: Any, outcome: str) -> Any:
        """The publisher's ScheduleRunCompleted for the run of a pending post."""
        return self.event("ScheduleRunCompleted", run_id=post.data["run_id"], outcome=outcome)

    def grant(self, amount: int, grant_id: str | None = None) -> Any:
        return self.event("CreditsGranted", grant_id=grant_id or str(uuid.uuid4()), amount=amount)

    def period(self, credits: int, start: datetime, subscription_id: str | None = None) -> Any:
        return self.event(
            "SubscriptionActivated",
            subscription_id=subscription_id or str(uuid.UUID(int=uuid.UUID(self.id).int ^ 1)),
            plan="STARTER",
            credits_total=credits,
            period_start=start.isoformat(),
            period_end=(start + timedelta(days=30)).isoformat(),
        )


class Books:
    """What billing's database holds: the ledger and the outbox (dead letters included)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def ledger_sum(self, org: str) -> int:
        return int(
            await self.db.pool.fetchval(
                "SELECT coalesce(sum(amount), 0) FROM ledger WHERE organization_id = $1", uuid.UUID(org)
            )
        )

    async def ledger_rows(self, org: str) -> list[tuple[str, str, int]]:
        rows = await self.db.pool.fetch(
            "SELECT action, idempotency_key, amount FROM ledger WHERE organization_id = $1 ORDER BY id", uuid.UUID(org)
        )
        return [(r["action"], r["idempotency_key"], r["amount"]) for r in rows]

    async def outbox(self, event_type: str) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
        return [json.loads(r["payload"]) for r in rows]

    async def dead_letters(self) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch("SELECT payload FROM outbox WHERE topic LIKE '%.dlq' ORDER BY id")
        return [json.loads(r["payload"]) for r in rows]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("billing", MIGRATIONS), max_size=70)
    yield database
    await database.close()


@pytest.fixture
def consumer(db: Database, database_url: str, stack: Any) -> EventConsumer:
    d = definition()
    return EventConsumer("billing", db, d.handlers, kafka=stack.kafka_settings, settings=_settings(database_url))


@pytest.fixture
def new_org() -> type[Org]:
    return Org


@pytest.fixture
def books(db: Database) -> Books:
    return Books(db)


@pytest.fixture
def books_of() -> type[Books]:
    return Books


@pytest.fixture
async def billing(database_url: str, kafka: KafkaSettings) -> AsyncIterator[ServiceRuntime]:
    async with ServiceRuntime(definition(), settings=_settings(database_url), kafka=kafka) as runtime:
        yield runtime
