"""No organization touches another's through the ids its events name: each case is either
applied to the sender alone or dead-lettered saying the id is another organization's; never
ignored, and never a change of the owner's rows. On the real database, through the consumer.
(Pending post inputs naming another organization's pending post: test_publishing_from_events.py.)"""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.bootstrap import definition
from hopcast_publisher.config import PublisherSettings
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import Platform
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import account_transit_aad, load_keyring
from hopcast_shared.db import Database
from hopcast_shared.settings import CryptoSettings, KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration

KEYRING = load_keyring(CryptoSettings(token_keys=f"1:{base64.b64encode(os.urandom(32)).decode()}"))


@pytest.fixture
def consumer(db: Database) -> EventConsumer:
    service = definition(
        settings=PublisherSettings(lease_s=300, http_deadline_s=10),
        adapters={p.value: SandboxAdapter(p.value) for p in Platform},
        keyring=KEYRING,
    )
    return EventConsumer(
        "publisher",
        db,
        service.handlers,
        kafka=KafkaSettings(topic_prefix="t."),
        settings=ServiceSettings(
            name="publisher", database_url=db.url, http_port=18084, handler_backoff_initial_s=0.01
        ),
    )


class Tenant:
    """One organization with a brand and a default TWITTER account linked to it."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())
        self.account = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def send(self, event: Any) -> str:
        return await self.consumer.handle_record(as_record(event))

    async def create(self) -> Tenant:
        connected = self.event(
            "SocialAccountConnected",
            social_account_id=self.account,
            platform="TWITTER",
            handle=f"@{self.account[:8]}",
            api_base_url=None,
            access_token=str(
                KEYRING.encrypt("plain-access", associated_data=account_transit_aad(self.org, self.account))
            ),
            refresh_token=None,
            token_expires_at=None,
            is_active=True,
        )
        linked = self.event(
            "BrandAccountLinked", brand_profile_id=self.brand, social_account_id=self.account, is_default=True
        )
        for event in (
            self.event("OrganizationCreated"),
            self.event("BrandProfileCreated", brand_profile_id=self.brand),
            connected,
            linked,
        ):
            assert await self.send(event) == "handled"
        return self


async def _dead_letter_errors(db: Database) -> list[str]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.publisher.dlq' ORDER BY id")
    return [json.loads(r["payload"])["error"] for r in rows]


async def _snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    tables = ("brands", "social_accounts", "brand_accounts", "posts")
    return {t: [dict(r) for r in await db.pool.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in tables}


async def test_deleting_or_restoring_another_organizations_brand_is_refused(
    db: Database, consumer: EventConsumer
) -> None:
    """It used to be consumed without a trace (nothing changed, nothing said)."""
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    before = await _snapshot(db)
    for type_name in ("BrandProfileDeleted", "BrandProfileRestored"):
        assert await other.send(other.event(type_name, brand_profile_id=owner.brand)) == "dead_lettered"
    assert await _dead_letter_errors(db) == [f"PermanentError: brand {owner.brand} belongs to another organization"] * 2
    assert await _snapshot(db) == before
    # A brand no organization has yet is no one's: nothing to refuse.
    assert await other.send(other.event("BrandProfileDeleted", brand_profile_id=str(uuid.uuid4()))) == "handled"


async def test_unlinking_another_organizations_brand_or_account_is_refused(
    db: Database, consumer: EventConsumer
) -> None:
    """It used to be consumed without a trace; the owner's link stays either way."""
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    before = await _snapshot(db)
    theirs = other.event("BrandAccountUnlinked", brand_profile_id=owner.brand, social_account_id=owner.account)
    own_account = other.event("BrandAccountUnlinked", brand_profile_id=owner.brand, social_account_id=other.account)
    own_brand = other.event("BrandAccountUnlinked", brand_profile_id=other.brand, social_account_id=owner.account)
    for event in (theirs, own_account, own_brand):
        assert await other.send(event) == "dead_lettered"
    assert await _dead_letter_errors(db) == [
        f"PermanentError: brand {owner.brand} belongs to another organization",
        f"PermanentError: brand {owner.brand} belongs to another organization",
        f"PermanentError: social account {owner.account} belongs to another organization",
    ]
    assert await _snapshot(db) == before
    # Its own link goes; a link no one has is nothing to refuse.
    for _ in range(2):
        mine = other.event("BrandAccountUnlinked", brand_profile_id=other.brand, social_account_id=other.account)
        assert await other.send(mine) == "handled"
    links = await db.pool.fetch("SELECT organization_id FROM brand_accounts")
    assert [str(r["organization_id"]) for r in links] == [owner.org]


async def test_commands_naming_another_organizations_account_or_post_say_so(
    db: Database, consumer: EventConsumer
) -> None:
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    post_id = uuid.uuid4()
    await db.pool.execute(
        """
        INSERT INTO posts (id, organization_id, pending_post_id, run_id, schedule_id, brand_profile_id, material_id,
                           social_account_id, platform, angle, content, external_id, external_url, published_at)
        VALUES ($1, $2, $3, $3, $3, $4, $3, $5, 'TWITTER', 'STORYTELLING', 'text', 'x1', 'https://x.example/1', $6)
        """,
        post_id,
        uuid.UUID(owner.org),
        uuid.uuid4(),
        uuid.UUID(owner.brand),
        uuid.UUID(owner.account),
        datetime(2027, 3, 14, tzinfo=UTC),
    )
    before = await _snapshot(db)
    events = [
        other.event("SocialAccountDeleted", social_account_id=owner.account),
        other.event("SocialAccountRestored", social_account_id=owner.account),
        other.event("BrandAccountLinked", brand_profile_id=other.brand, social_account_id=owner.account),
        other.event("EngagementReported", post_id=str(post_id)),
    ]
    for event in events:
        assert await other.send(event) == "dead_lettered", event.type
    account = f"PermanentError: social account {owner.account} belongs to another organization"
    assert await _dead_letter_errors(db) == [
        account,
        account,
        account,
        f"PermanentError: post {post_id} belongs to another organization",
    ]
    assert await _snapshot(db) == before
