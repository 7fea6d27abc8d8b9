"""Tokens bound to their owner in transit, and token freshness and account health both ways
(issue 16), on the real database: events handled as the consumer does (inbox, outbox, dead
letters), the publishing loop run a round at a time against the fake platform servers.

Given these events, expect those rows, those events in the outbox and those calls on the
platform (the relay is not running here; the Kafka path is in test_publisher_kafka.py).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.platforms.base import PlatformAdapter
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.bootstrap import MIGRATIONS, definition
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.publishing_loop import PublishingLoop
from hopcast_publisher.testing import (
    LOOPBACK_EGRESS,
    FakeBluesky,
    FakeLinkedIn,
    FakeMastodon,
    FakePlatform,
    FakeX,
    Fault,
    serve,
)
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import Envelope
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import Keyring, TokenDecryptError, account_transit_aad, load_keyring, owner_aad
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import CryptoSettings, KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration

KEYRING = load_keyring(CryptoSettings(token_keys=f"1:{base64.b64encode(os.urandom(32)).decode()}"))
TOKENS = AccountTokens(KEYRING)
KAFKA = KafkaSettings(topic_prefix="t.")
SETTINGS = PublisherSettings(lease_s=300, http_deadline_s=10)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class World:
    """The publisher on one database with the given adapters: `send` handles an event as the
    consumer would, `publish` runs one round of the publishing loop."""

    def __init__(self, db: Database, adapters: dict[str, PlatformAdapter]) -> None:
        self.db = db
        service = definition(settings=SETTINGS, adapters=adapters, keyring=KEYRING)
        self.consumer = EventConsumer(
            "publisher",
            db,
            service.handlers,
            kafka=KAFKA,
            settings=ServiceSettings(
                name="publisher", database_url=db.url, http_port=18084, handler_backoff_initial_s=0.01
            ),
        )
        self.loop = PublishingLoop(db, KAFKA, adapters, TOKENS, SETTINGS)

    async def send(self, event: Envelope, topic: str = "upstream.events") -> str:
        return await self.consumer.handle_record(as_record(event, topic=topic))

    async def publish(self) -> int:
        return await self.loop.publish_batch()

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch(
            "SELECT topic, payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type
        )
        return [{"topic": r["topic"], **json.loads(r["payload"])} for r in rows]

    async def dead_letters(self) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.publisher.dlq' ORDER BY id")
        return [json.loads(r["payload"]) for r in rows]

    async def account(self, account_id: str) -> dict[str, Any]:
        row = await self.db.pool.fetchrow("SELECT * FROM social_accounts WHERE id = $1", uuid.UUID(account_id))
        assert row is not None
        return dict(row)

    async def opened(self, account_id: str) -> str:
        """The plaintext of an account's stored access token."""
        return TOKENS.open(uuid.UUID(account_id), (await self.account(account_id))["access_token"])


class Org:
    """One organization with one brand, as upstream creates them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.id = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Envelope:
        return example_event(type_name, organization_id=self.id, time=datetime.now(UTC), **changes)

    def seal(self, plaintext: str, account_id: str) -> str:
        """A token as upstream sends it for one of this organization's accounts."""
        return KEYRING.encrypt(plaintext, associated_data=account_transit_aad(self.id, account_id))

    async def create(self) -> Org:
        assert await self.world.send(self.event("OrganizationCreated")) == "handled"
        assert await self.world.send(self.event("BrandProfileCreated", brand_profile_id=self.brand)) == "handled"
        return self

    def account_event(
        self,
        account_id: str,
        *,
        platform: str = "MASTODON",
        access: str | None = None,
        refresh: str | None = None,
        issued_at: datetime | None = None,
        type_name: str = "SocialAccountConnected",
        **changes: Any,
    ) -> Envelope:
        """A SocialAccountConnected (or ...Updated) whose tokens are sealed for it, unless given."""
        fields: dict[str, Any] = {
            "social_account_id": account_id,
            "platform": platform,
            "handle": f"@{platform.lower()}-{account_id[:6]}",
            "api_base_url": "https://mastodon.example" if platform == "MASTODON" else None,
            "external_account_id": None,
            "access_token": access or self.seal(f"access-{account_id}", account_id),
            "refresh_token": refresh,
            "token_expires_at": None,
            "tokens_issued_at": rfc3339(issued_at) if issued_at else None,
        }
        return self.event(type_name, **{**fields, **changes})

    async def link(self, account_id: str) -> None:
        linked = self.event(
            "BrandAccountLinked", brand_profile_id=self.brand, social_account_id=account_id, is_default=True
        )
        assert await self.world.send(linked) == "handled"

    async def post(self, platform: str) -> str:
        """A drafted and paid post for the brand on one platform; its run id."""
        pending, run = str(uuid.uuid4()), str(uuid.uuid4())
        drafted = self.event(
            "PendingPostCreated",
            pending_post_id=pending,
            run_id=run,
            brand_profile_id=self.brand,
            platforms=[platform],
            requires_approval=False,
            content=f"post {run}",
        )
        assert await self.world.send(drafted, "content.events") == "handled"
        debited = self.event("CreditsDebited", pending_post_id=pending, run_id=run)
        assert await self.world.send(debited, "billing.events") == "handled"
        return run


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("publisher", MIGRATIONS), max_size=8)
    yield database
    await database.close()


# --- tokens bound to their owner in transit ------------------------------------------------------


async def test_a_ciphertext_moved_to_another_account_or_organization_is_dead_lettered(db: Database) -> None:
    world = World(db, {})
    a, b = await Org(world).create(), await Org(world).create()
    owner, other, elsewhere = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    access = a.seal("plain-access-of-the-owner", owner)
    assert await world.send(a.account_event(owner, access=access)) == "handled"
    assert await world.opened(owner) == "plain-access-of-the-owner"
    before = await world.account(owner)

    made_for_elsewhere = a.seal("plain-made-for-elsewhere", elsewhere)
    moved = [
        a.account_event(other, access=access),  # to another account of the same organization
        b.account_event(elsewhere, access=made_for_elsewhere),  # the same account id, another organization
        a.account_event(other, refresh=access),  # only the refresh token moved
        a.account_event(owner, access=access, type_name="SocialAccountUpdated", refresh=made_for_elsewhere),
    ]
    for event in moved:
        assert await world.send(event) == "dead_lettered"

    letters = await world.dead_letters()
    assert [(x["event_id"], x["error_kind"]) for x in letters] == [(str(e.id), "token_not_for_account") for e in moved]
    assert "another account or organization" in letters[0]["error"]
    assert "plain-" not in json.dumps(letters)
    # Nothing of theirs was stored: no other account, and the owner's row as it was.
    ids = {str(r["id"]) for r in await db.pool.fetch("SELECT id FROM social_accounts")}
    assert ids == {owner}
    assert await world.account(owner) == before


async def test_a_ciphertext_under_a_key_this_service_lacks_is_rejected_as_such(db: Database) -> None:
    world = World(db, {})
    org = await Org(world).create()
    account = str(uuid.uuid4())
    foreign = Keyring.generate((7,)).encrypt("x", associated_data=account_transit_aad(org.id, account))
    assert await world.send(org.account_event(account, access=foreign)) == "dead_lettered"
    [letter] = await world.dead_letters()
    assert letter["error_kind"] == "rejected" and "key this service does not hold" in letter["error"]


# --- token freshness ---------------------------------------------------------------------------------


async def test_an_older_token_pair_is_ignored_and_an_equal_or_newer_one_taken(db: Database) -> None:
    world = World(db, {})
    org = await Org(world).create()
    account = str(uuid.uuid4())

    async def update(plaintext: str, issued_at: datetime | None, **changes: Any) -> None:
        event = org.account_event(
            account,
            access=org.seal(plaintext, account),
            issued_at=issued_at,
            type_name="SocialAccountUpdated",
            **changes,
        )
        assert await world.send(event) == "handled"

    assert await world.send(org.account_event(account, access=org.seal("one", account), issued_at=T0)) == "handled"

    await update("older", T0 - timedelta(seconds=1), handle="@renamed")
    row = await world.account(account)
    assert await world.opened(account) == "one" and row["tokens_issued_at"] == T0
    assert row["handle"] == "@renamed"  # the rest of the state is still applied
    await update("undated", None)
    assert await world.opened(account) == "one"

    await update("one again", T0)  # the same instant: a redelivery or an echo, taken
    assert await world.opened(account) == "one again"
    await update("two", T0 + timedelta(microseconds=1))
    row = await world.account(account)
    assert await world.opened(account) == "two" and row["tokens_issued_at"] == T0 + timedelta(microseconds=1)


async def test_undated_pairs_replace_each_other_as_before(db: Database) -> None:
    world = World(db, {})
    org = await Org(world).create()
    account = str(uuid.uuid4())
    assert await world.send(org.account_event(account, access=org.seal("first", account))) == "handled"
    update = org.account_event(account, access=org.seal("second", account), type_name="SocialAccountUpdated")
    assert await world.send(update) == "handled"
    assert await world.opened(account) == "second"
    dated = org.account_event(account, access=org.seal("dated", account), issued_at=T0)
    assert await world.send(dated) == "handled"
    assert await world.opened(account) == "dated"


# --- the publisher's own refresh, both ways ------------------------------------------------------


# The fakes live on loopback, which the egress guard refuses unless told otherwise.
LOOPBACK = AdapterOptions(egress=LOOPBACK_EGRESS)


def _x(base_url: str) -> XAdapter:
    return XAdapter(api_url=base_url, client_id="app", options=LOOPBACK)


async def test_a_refresh_is_stored_and_told_upstream_bound_to_the_account(db: Database) -> None:
    fake = FakeX()
    async with serve(fake) as base_url:
        adapter = _x(base_url)
        world = World(db, {"TWITTER": adapter})
        org = await Org(world).create()
        account = str(uuid.uuid4())
        soon = datetime.now(UTC) + timedelta(seconds=30)
        connected = org.account_event(
            account,
            platform="TWITTER",
            external_account_id=FakeX.user_id,
            access=org.seal("expired-access", account),
            refresh=org.seal("good-refresh", account),
            token_expires_at=rfc3339(soon),
            issued_at=T0,
        )
        assert await world.send(connected) == "handled"
        await org.link(account)
        await org.post("TWITTER")
        before = datetime.now(UTC)
        await world.publish()
        assert len(fake.posts) == 1
        assert ("POST", "/2/oauth2/token") in fake.calls

        [refreshed] = await world.events("SocialAccountTokensRefreshed")
        data = refreshed["data"]
        assert refreshed["topic"] == "t.publisher.events" and refreshed["organizationid"] == org.id
        assert data["social_account_id"] == account
        # The ciphertexts open only with the binding to this organization and account.
        bound = account_transit_aad(org.id, account)
        assert KEYRING.decrypt(data["access_token"], associated_data=bound) == "fresh-access"
        assert KEYRING.decrypt(data["refresh_token"], associated_data=bound) == "r-fresh-access"
        for wrong in (
            account_transit_aad(org.id, uuid.uuid4()),
            account_transit_aad(uuid.uuid4(), account),
            owner_aad("social_account", account),
        ):
            with pytest.raises(TokenDecryptError):
                KEYRING.decrypt(data["access_token"], associated_data=wrong)
        # Stored sealed, with the publisher's own issued time, the one the event carries.
        row = await world.account(account)
        assert await world.opened(account) == "fresh-access"
        assert before <= row["tokens_issued_at"] <= datetime.now(UTC)
        assert data["tokens_issued_at"] == rfc3339(row["tokens_issued_at"])
        assert "fresh-access" not in json.dumps(await world.events("PostPublished"))

        # Upstream echoes the pair back: taken (same instant). Upstream's stale pair: ignored,
        # the refreshed pair stays (X rotates refresh tokens: the old one no longer works).
        echo = org.account_event(
            account,
            platform="TWITTER",
            external_account_id=FakeX.user_id,
            access=data["access_token"],
            refresh=data["refresh_token"],
            token_expires_at=data["token_expires_at"],
            tokens_issued_at=data["tokens_issued_at"],
            type_name="SocialAccountUpdated",
        )
        assert await world.send(echo) == "handled"
        stale = org.account_event(
            account,
            platform="TWITTER",
            external_account_id=FakeX.user_id,
            access=org.seal("expired-access", account),
            refresh=org.seal("good-refresh", account),
            issued_at=T0,
            type_name="SocialAccountUpdated",
        )
        assert await world.send(stale) == "handled"
        assert await world.opened(account) == "fresh-access"
        refresh = (await world.account(account))["refresh_token"]
        assert TOKENS.open(uuid.UUID(account), refresh) == "r-fresh-access"
        await adapter.close()


# --- refresh failing for good ----------------------------------------------------------------------


def _adapter(platform: str, base_url: str) -> PlatformAdapter:
    if platform == "BLUESKY":
        return BlueskyAdapter(pds_url=base_url, options=LOOPBACK)
    if platform == "MASTODON":
        return MastodonAdapter(client_id="app", client_secret="secret", options=LOOPBACK)  # noqa: S106
    if platform == "TWITTER":
        return _x(base_url)
    return LinkedInAdapter(
        api_url=base_url,
        oauth_url=base_url,
        client_id="app",
        client_secret="secret",  # noqa: S106
        options=LOOPBACK,
    )


FAKES: dict[str, type[FakePlatform]] = {
    "LINKEDIN": FakeLinkedIn,
    "MASTODON": FakeMastodon,
    "TWITTER": FakeX,
    "BLUESKY": FakeBluesky,
}
EXTERNAL = {"BLUESKY": "did:plc:hopcast", "TWITTER": FakeX.user_id, "LINKEDIN": "urn:li:person:abc123"}


@pytest.mark.parametrize("platform", sorted(FAKES))
async def test_a_refused_refresh_marks_the_account_once_and_it_is_not_used_until_a_newer_pair(
    db: Database, platform: str
) -> None:
    fake = FAKES[platform]()
    async with serve(fake) as base_url:
        adapter = _adapter(platform, base_url)
        world = World(db, {platform: adapter})
        org = await Org(world).create()
        account = str(uuid.uuid4())

        def state(access: str, refresh: str, issued_at: datetime, type_name: str) -> Envelope:
            return org.account_event(
                account,
                platform=platform,
                api_base_url="https://mastodon.example" if platform == "MASTODON" else None,
                external_account_id=EXTERNAL.get(platform),
                access=org.seal(access, account),
                refresh=org.seal(refresh, account),
                issued_at=issued_at,
                type_name=type_name,
            )

        async def connect(event: Envelope) -> str:
            """Send an account event; a Mastodon account is then pointed at the fake instance on
            loopback (events may name only https instances of public hosts, so no event can)."""
            outcome = await world.send(event)
            if platform == "MASTODON":
                await db.pool.execute(
                    "UPDATE social_accounts SET api_base_url = $1 WHERE id = $2", base_url, uuid.UUID(account)
                )
            return outcome

        # The access token expired and the platform no longer takes the refresh token.
        assert await connect(state("expired-access", "revoked-refresh", T0, "SocialAccountConnected")) == "handled"
        await org.link(account)
        first = await org.post(platform)
        await world.publish()
        [failed] = await world.events("PostPublishFailed")
        assert (failed["data"]["run_id"], failed["data"]["reason"]) == (first, "TOKEN_INVALID")
        [reauth] = await world.events("SocialAccountNeedsReauth")
        assert reauth["topic"] == "t.publisher.events" and reauth["organizationid"] == org.id
        assert reauth["data"] == {"social_account_id": account, "platform": platform, "reason": "REFRESH_REJECTED"}
        assert (await world.account(account))["needs_reauth"] == "REFRESH_REJECTED"
        assert fake.posts == []

        # Not used any more: the next post fails with no call to the platform, and says why once.
        calls = len(fake.calls)
        second = await org.post(platform)
        await world.publish()
        assert len(fake.calls) == calls
        failures = {e["data"]["run_id"]: e["data"] for e in await world.events("PostPublishFailed")}
        assert failures[second]["reason"] == "TOKEN_INVALID"
        assert "re-authorization (REFRESH_REJECTED)" in failures[second]["detail"]
        assert len(await world.events("SocialAccountNeedsReauth")) == 1

        # An older pair leaves it marked; the owner connects it again (a newer pair): usable.
        assert await connect(state("good-access", "good-refresh", T0, "SocialAccountUpdated")) == "handled"
        assert (await world.account(account))["needs_reauth"] == "REFRESH_REJECTED"
        newer = state("good-access", "good-refresh", T0 + timedelta(hours=1), "SocialAccountUpdated")
        assert await connect(newer) == "handled"
        row = await world.account(account)
        assert row["needs_reauth"] is None and row["needs_reauth_since"] is None
        third = await org.post(platform)
        await world.publish()
        assert len(fake.posts) == 1
        [published] = [e for e in await world.events("PostPublished") if e["topic"] == "t.publisher.events"]
        assert published["data"]["run_id"] == third
        await adapter.close()


async def _linked_linkedin_account(world: World, refresh_token: str) -> tuple[Org, str]:
    """A new organization with a LinkedIn account (its access token expired), linked to its brand."""
    org = await Org(world).create()
    account = str(uuid.uuid4())
    connected = org.account_event(
        account,
        platform="LINKEDIN",
        external_account_id=EXTERNAL["LINKEDIN"],
        access=org.seal("expired-access", account),
        refresh=org.seal(refresh_token, account),
        issued_at=T0,
    )
    assert await world.send(connected) == "handled"
    await org.link(account)
    return org, account


async def test_a_token_refused_after_a_refresh_marks_the_account_unauthorized(db: Database) -> None:
    fake = FakeLinkedIn()
    async with serve(fake) as base_url:
        adapter = _adapter("LINKEDIN", base_url)
        world = World(db, {"LINKEDIN": adapter})
        org, account = await _linked_linkedin_account(world, "good-refresh")
        fake.fail_next(Fault(401))  # the refreshed token is refused too
        await org.post("LINKEDIN")
        await world.publish()
        # The refresh itself worked (and was told upstream); the platform still refused.
        assert len(await world.events("SocialAccountTokensRefreshed")) == 1
        [reauth] = await world.events("SocialAccountNeedsReauth")
        assert reauth["data"]["reason"] == "UNAUTHORIZED"
        assert (await world.account(account))["needs_reauth"] == "UNAUTHORIZED"
        [failed] = await world.events("PostPublishFailed")
        assert failed["data"]["reason"] == "TOKEN_INVALID" and fake.posts == []
        await adapter.close()


async def test_posts_of_a_refused_account_in_the_same_round_call_the_platform_once(db: Database) -> None:
    fake = FakeLinkedIn()
    async with serve(fake) as base_url:
        adapter = _adapter("LINKEDIN", base_url)
        world = World(db, {"LINKEDIN": adapter})
        org, _ = await _linked_linkedin_account(world, "revoked-refresh")
        runs = {await org.post("LINKEDIN") for _ in range(4)}
        assert await world.publish() == 4  # one round for all four
        assert fake.creates() == 1 and fake.calls.count(("POST", "/oauth/v2/accessToken")) == 1
        failed = await world.events("PostPublishFailed")
        assert {e["data"]["run_id"] for e in failed} == runs
        assert {e["data"]["reason"] for e in failed} == {"TOKEN_INVALID"}
        assert len(await world.events("SocialAccountNeedsReauth")) == 1
        await adapter.close()
