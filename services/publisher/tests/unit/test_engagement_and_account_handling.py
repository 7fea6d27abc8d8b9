"""The publisher's handlers of engagement reports and connected accounts, run in memory: the
repositories are fakes that subclass the real ones (as cosmicpython's unit tests do), the
event context collects what the handler emits. Given these events, expect those events and
that state; the same handlers run on PostgreSQL in tests/integration."""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from hopcast_publisher.adapters.accounts import AccountRepository
from hopcast_publisher.adapters.credentials import AccountTokens, TokenDecryptError
from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.domain.accounts import SocialAccount
from hopcast_publisher.domain.posts import PublishedPost
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.handlers import DISPATCH, account_upserted, engagement_reported
from hopcast_shared.contract import EngagementReported, SocialAccountConnected
from hopcast_shared.contract.envelope import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import account_transit_aad, load_keyring
from hopcast_shared.db import Conn
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.settings import CryptoSettings, KafkaSettings

ORG = uuid.uuid4()
KEYRING = load_keyring(CryptoSettings(token_keys=f"1:{base64.b64encode(os.urandom(32)).decode()}"))


class FakePostRepository(PostRepository):
    """Posts in a dict; the connection is never used."""

    def __init__(self, *posts: PublishedPost) -> None:
        self.posts = {p.id: p for p in posts}

    async def post(self, conn: Conn, post_id: uuid.UUID, *, lock: bool = False) -> PublishedPost | None:
        return self.posts.get(post_id)

    async def record_engagement(
        self,
        conn: Conn,
        post_id: uuid.UUID,
        *,
        likes: int,
        comments: int,
        shares: int,
        impressions: int,
        rate: float,
        observed_at: datetime,
    ) -> None:
        self.posts[post_id] = replace(
            self.posts[post_id],
            likes=likes,
            comments=comments,
            shares=shares,
            impressions=impressions,
            engagement_rate=rate,
            engagement_observed_at=observed_at,
        )


class FakeAccountRepository(AccountRepository):
    """Social accounts in a dict; the connection is never used."""

    def __init__(self) -> None:
        self.accounts: dict[uuid.UUID, SocialAccount] = {}

    async def account(self, conn: Conn, account_id: uuid.UUID, *, lock: bool = False) -> SocialAccount | None:
        return self.accounts.get(account_id)

    async def upsert_account(self, conn: Conn, values: dict[str, Any]) -> None:
        existing = self.accounts.get(values["id"])
        self.accounts[values["id"]] = SocialAccount(**values, deleted_at=existing.deleted_at if existing else None)


def deps(*, posts: PostRepository | None = None, accounts: AccountRepository | None = None) -> PublisherDeps:
    return PublisherDeps(
        tokens=AccountTokens(KEYRING),
        settings=PublisherSettings(),
        posts=posts or FakePostRepository(),
        accounts=accounts or FakeAccountRepository(),
    )


def context(envelope: Envelope) -> EventContext:
    """The handler's context without a database: what it emits stays in `outbox`."""
    return EventContext(cast(Conn, None), envelope, "publisher", KafkaSettings())


def published_post(**changes: Any) -> PublishedPost:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "organization_id": ORG,
        "pending_post_id": uuid.uuid4(),
        "run_id": uuid.uuid4(),
        "schedule_id": uuid.uuid4(),
        "brand_profile_id": uuid.uuid4(),
        "material_id": uuid.uuid4(),
        "social_account_id": uuid.uuid4(),
        "platform": "MASTODON",
        "angle": "EDUCATIONAL",
        "content": "Why we roast on Tuesdays",
        "external_id": "109",
        "external_url": "https://mastodon.example/@roastery/109",
        "published_at": datetime(2027, 3, 14, 7, tzinfo=UTC),
        "likes": 0,
        "comments": 0,
        "shares": 0,
        "impressions": 0,
        "engagement_rate": 0.0,
        "engagement_observed_at": None,
        "deleted_at": None,
    }
    return PublishedPost(**{**values, **changes})


def report(post: PublishedPost, *, organization_id: uuid.UUID = ORG, **changes: Any) -> Envelope:
    return example_event("EngagementReported", organization_id=organization_id, post_id=str(post.id), **changes)


def emitted(ctx: EventContext) -> list[tuple[str, str]]:
    return [(row.topic, row.event_type) for row in ctx.outbox]


async def test_an_engagement_report_updates_the_post_and_tells_the_dashboards() -> None:
    post = published_post()
    posts = FakePostRepository(post)
    envelope = report(post, likes=30, comments=6, shares=4, impressions=800)
    ctx = context(envelope)

    await engagement_reported(deps(posts=posts), ctx, envelope.data_as(EngagementReported))

    stored = posts.posts[post.id]
    assert (stored.likes, stored.comments, stored.shares, stored.impressions) == (30, 6, 4, 800)
    assert stored.engagement_rate == pytest.approx(40 / 800)
    assert emitted(ctx) == [("analytics.events", "EngagementUpdated")]
    (row,) = ctx.outbox
    event = json.loads(row.payload)
    assert event["correlationid"] == str(post.run_id)
    assert event["causationid"] == str(envelope.id)
    assert row.key == str(ORG).encode()
    data = event["data"]
    assert (data["post_id"], data["platform"], data["angle"]) == (str(post.id), "MASTODON", "EDUCATIONAL")
    assert data["engagement_rate"] == pytest.approx(40 / 800)


async def test_an_older_engagement_report_changes_nothing() -> None:
    seen = datetime(2027, 3, 16, tzinfo=UTC)
    post = published_post(likes=50, impressions=900, engagement_observed_at=seen)
    posts = FakePostRepository(post)
    envelope = report(post, likes=1, impressions=10, observed_at="2027-03-15T07:00:00Z")
    ctx = context(envelope)

    await engagement_reported(deps(posts=posts), ctx, envelope.data_as(EngagementReported))

    assert posts.posts[post.id] == post
    assert ctx.outbox == []


async def test_a_deleted_post_is_kept_up_to_date_but_not_reported() -> None:
    post = published_post(deleted_at=datetime(2027, 3, 15, tzinfo=UTC))
    posts = FakePostRepository(post)
    envelope = report(post, likes=3, impressions=30)
    ctx = context(envelope)

    await engagement_reported(deps(posts=posts), ctx, envelope.data_as(EngagementReported))

    assert (posts.posts[post.id].likes, posts.posts[post.id].impressions) == (3, 30)
    assert ctx.outbox == []


@pytest.mark.parametrize("whose", ["unknown", "another organization's"])
async def test_engagement_of_a_post_not_ours_is_refused(whose: str) -> None:
    post = published_post()
    posts = FakePostRepository(post) if whose != "unknown" else FakePostRepository()
    envelope = report(post, organization_id=uuid.uuid4())
    ctx = context(envelope)

    with pytest.raises(PermanentError):
        await engagement_reported(deps(posts=posts), ctx, envelope.data_as(EngagementReported))
    assert ctx.outbox == []


def connected(account_id: uuid.UUID, platform: str = "MASTODON", **changes: Any) -> Envelope:
    return example_event(
        "SocialAccountConnected",
        organization_id=ORG,
        social_account_id=str(account_id),
        platform=platform,
        access_token=KEYRING.encrypt("plain-access", associated_data=account_transit_aad(ORG, account_id)),
        refresh_token=KEYRING.encrypt("plain-refresh", associated_data=account_transit_aad(ORG, account_id)),
        **changes,
    )


async def test_a_connected_account_is_stored_with_its_tokens_sealed_to_it() -> None:
    accounts = FakeAccountRepository()
    account_id = uuid.uuid4()
    envelope = connected(account_id)

    await account_upserted(deps(accounts=accounts), context(envelope), envelope.data_as(SocialAccountConnected))

    stored = accounts.accounts[account_id]
    assert (stored.organization_id, stored.platform) == (ORG, "MASTODON")
    assert "plain-access" not in stored.access_token and "plain-refresh" not in (stored.refresh_token or "")
    tokens = AccountTokens(KEYRING)
    assert tokens.open(account_id, stored.access_token) == "plain-access"
    assert stored.refresh_token is not None and tokens.open(account_id, stored.refresh_token) == "plain-refresh"
    with pytest.raises(TokenDecryptError):  # bound to the account: another account's row cannot open it
        tokens.open(uuid.uuid4(), stored.access_token)


async def test_an_accounts_platform_cannot_change_nor_its_organization() -> None:
    accounts = FakeAccountRepository()
    account_id = uuid.uuid4()
    first = connected(account_id)
    await account_upserted(deps(accounts=accounts), context(first), first.data_as(SocialAccountConnected))
    before = accounts.accounts[account_id]

    other_platform = connected(account_id, platform="BLUESKY")
    with pytest.raises(PermanentError, match="platform cannot change"):
        await account_upserted(
            deps(accounts=accounts), context(other_platform), other_platform.data_as(SocialAccountConnected)
        )
    intruder = uuid.uuid4()
    other_org = example_event(
        "SocialAccountConnected",
        organization_id=intruder,
        social_account_id=str(account_id),
        access_token=KEYRING.encrypt("x", associated_data=account_transit_aad(intruder, account_id)),
    )
    with pytest.raises(PermanentError, match="another organization"):
        await account_upserted(deps(accounts=accounts), context(other_org), other_org.data_as(SocialAccountConnected))
    assert accounts.accounts[account_id] == before


def test_the_dispatch_map_sends_engagement_and_accounts_to_their_handlers() -> None:
    assert DISPATCH["EngagementReported"] is engagement_reported
    assert DISPATCH["SocialAccountConnected"] is DISPATCH["SocialAccountUpdated"] is account_upserted
