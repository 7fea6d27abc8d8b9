"""The publisher's service layer on the real database: events handled as the consumer does
(inbox, outbox, dead letters), the publishing loop run step by step. Given these events,
expect those rows and those events in the outbox (the relay is not running here; the
Kafka path is in test_publisher_kafka.py)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hopcast_publisher.adapters.accounts import AccountRepository
from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.platforms.base import PlatformAdapter, RetryPolicy
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.adapters.retention import purge
from hopcast_publisher.bootstrap import MIGRATIONS, definition
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.http import routes
from hopcast_publisher.entrypoints.publishing_loop import PUBLISH_CHANNEL, PublishingLoop
from hopcast_publisher.service_layer.token_rotation import rotate_tokens
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeBluesky, FakeMastodon, serve
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import Platform
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import TokenDecryptError, account_transit_aad, load_keyring
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.retention import purge_database
from hopcast_shared.settings import CryptoSettings, KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration

KEY_1 = base64.b64encode(os.urandom(32)).decode()
KEY_2 = base64.b64encode(os.urandom(32)).decode()
KAFKA = KafkaSettings(topic_prefix="t.")
SETTINGS = PublisherSettings(lease_s=300, http_deadline_s=10)


def keyring(*keys: str) -> Any:
    return load_keyring(CryptoSettings(token_keys=",".join(f"{i}:{k}" for i, k in enumerate(keys, start=1))))


class Harness:
    """The publisher on one database: `send` handles an event as the consumer would,
    `publish` runs one round of the publishing loop."""

    def __init__(
        self, db: Database, adapters: dict[str, PlatformAdapter], ring: Any, settings: PublisherSettings = SETTINGS
    ) -> None:
        self.db = db
        self.adapters = adapters
        self.keyring = ring
        service = definition(settings=settings, adapters=adapters, keyring=ring)
        self.consumer = EventConsumer(
            "publisher",
            db,
            service.handlers,
            kafka=KAFKA,
            settings=ServiceSettings(
                name="publisher", database_url=db.url, http_port=18084, handler_backoff_initial_s=0.01
            ),
        )
        self.loop = PublishingLoop(db, KAFKA, adapters, AccountTokens(ring), settings)

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        return await self.consumer.handle_record(as_record(event, topic=topic))

    async def publish(self) -> int:
        return await self.loop.publish_batch()

    async def events(self, event_type: str, topic: str | None = None) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch(
            "SELECT topic, payload FROM outbox WHERE event_type = $1 AND ($2::text IS NULL OR topic = $2) ORDER BY id",
            event_type,
            topic,
        )
        return [json.loads(r["payload"]) for r in rows]

    async def dead_letters(self) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.publisher.dlq' ORDER BY id")
        return [json.loads(r["payload"]) for r in rows]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("publisher", MIGRATIONS), max_size=8)
    yield database
    await database.close()


@pytest.fixture
async def harness(db: Database) -> Harness:
    return Harness(db, {p.value: SandboxAdapter(p.value) for p in Platform}, keyring(KEY_1))


class Tenant:
    """One organization with one brand, as upstream creates them."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def create(self) -> Tenant:
        await self.h.send(self.event("OrganizationCreated"))
        await self.h.send(self.event("BrandProfileCreated", brand_profile_id=self.brand))
        return self

    def transport(self, plaintext: str, account_id: str) -> str:
        """A token as upstream sends it for one of this organization's accounts."""
        return str(self.h.keyring.encrypt(plaintext, associated_data=account_transit_aad(self.org, account_id)))

    async def account(
        self, platform: str, *, default: bool = False, active: bool = True, token: str | None = None, **more: Any
    ) -> str:
        account_id = str(uuid.uuid4())
        api = "https://mastodon.example" if platform == "MASTODON" else None
        outcome = await self.h.send(
            self.event(
                "SocialAccountConnected",
                social_account_id=account_id,
                platform=platform,
                handle=f"@{platform.lower()}-{account_id[:6]}",
                api_base_url=more.pop("api_base_url", api),
                access_token=self.transport(token or f"plain-access-{account_id}", account_id),
                refresh_token=None,
                token_expires_at=None,
                is_active=active,
                **more,
            )
        )
        assert outcome == "handled"
        linked = self.event(
            "BrandAccountLinked", brand_profile_id=self.brand, social_account_id=account_id, is_default=default
        )
        assert await self.h.send(linked) == "handled"
        return account_id

    def post_events(self, *, platforms: list[str], requires_approval: bool = False) -> dict[str, Any]:
        pending, run = str(uuid.uuid4()), str(uuid.uuid4())
        return {
            "post": self.event(
                "PendingPostCreated",
                pending_post_id=pending,
                run_id=run,
                brand_profile_id=self.brand,
                platforms=platforms,
                requires_approval=requires_approval,
            ),
            "debit": self.event("CreditsDebited", pending_post_id=pending, run_id=run),
            "debit_rejected": self.event("CreditsDebitRejected", pending_post_id=pending, run_id=run),
            "approve": self.event("PendingPostApproved", pending_post_id=pending),
            "reject": self.event("PendingPostRejected", pending_post_id=pending),
            "pending_post_id": pending,
            "run_id": run,
        }


TOPIC = {"post": "content.events", "debit": "billing.events", "debit_rejected": "billing.events"}


async def deliver(h: Harness, post: dict[str, Any], *names: str) -> None:
    for name in names:
        assert await h.send(post[name], TOPIC.get(name, "upstream.events")) == "handled"


def of_run(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["data"]["run_id"] == run_id]


POSTS_PUBLISHED = "hopcast_publisher_posts_published_total"


async def test_inputs_in_every_order_publish_once_per_platform(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("MASTODON", default=True)
    await tenant.account("BLUESKY", default=True)
    runs = []
    for order in itertools.permutations(["post", "debit"]):
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"])
        await deliver(harness, post, *order)
        runs.append(post)
    for order in itertools.permutations(["post", "debit", "approve"]):
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"], requires_approval=True)
        await deliver(harness, post, *order)
        runs.append(post)
    waiting = tenant.post_events(platforms=["MASTODON"], requires_approval=True)
    await deliver(harness, waiting, "debit", "post")  # no approval: must not go out

    before = {p: REGISTRY.get_sample_value(POSTS_PUBLISHED, {"platform": p}) or 0 for p in ("MASTODON", "BLUESKY")}
    assert await harness.publish() == len(runs)
    for platform, count in before.items():
        assert REGISTRY.get_sample_value(POSTS_PUBLISHED, {"platform": platform}) == count + len(runs)
    published = await harness.events("PostPublished", "t.publisher.events")
    analytics = await harness.events("PostPublished", "t.analytics.events")
    completed = await harness.events("ScheduleRunCompleted", "t.analytics.events")
    for post in runs:
        mine = of_run(published, post["run_id"])
        assert sorted(e["data"]["platform"] for e in mine) == ["BLUESKY", "MASTODON"]
        assert len(of_run(analytics, post["run_id"])) == 2
        outcome = of_run(completed, post["run_id"])
        assert [e["data"]["outcome"] for e in outcome] == ["PUBLISHED"]
        assert outcome[0]["correlationid"] == post["run_id"]
        assert outcome[0]["data"]["due_at"] == post["post"].data["due_at"]
    assert of_run(published, waiting["run_id"]) == [] and of_run(completed, waiting["run_id"]) == []
    row = await PendingPostRepository().pending_post(harness.db.pool, uuid.UUID(waiting["pending_post_id"]))  # type: ignore[arg-type]
    assert row["status"] == "WAITING"
    assert await harness.db.pool.fetchval("SELECT count(*) FROM posts") == 2 * len(runs)
    assert await harness.publish() == 0  # nothing left, nothing published twice


async def test_a_second_debit_and_a_redelivery_change_nothing(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, post, "debit", "post")
    await harness.publish()
    assert await harness.send(post["debit"], "billing.events") == "duplicate"
    second = tenant.event("CreditsDebited", pending_post_id=post["pending_post_id"], run_id=post["run_id"])
    assert await harness.send(second, "billing.events") == "handled"
    assert await harness.publish() == 0
    assert len(await harness.events("PostPublished", "t.publisher.events")) == 1
    assert len(await harness.events("ScheduleRunCompleted")) == 1


@pytest.mark.parametrize(
    "order",
    [("post", "debit", "reject"), ("reject", "post", "debit"), ("debit", "reject", "post")],
)
async def test_a_rejection_ends_the_run_as_rejected_once(harness: Harness, order: tuple[str, ...]) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    await deliver(harness, post, *order)
    await deliver(harness, post, "approve")  # too late: changes nothing
    assert await harness.publish() == 0
    completed = await harness.events("ScheduleRunCompleted")
    assert [e["data"]["outcome"] for e in completed] == ["REJECTED"]
    assert await harness.events("PostPublished") == []


async def test_a_rejected_debit_ends_it_without_any_event_from_the_publisher(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    await deliver(harness, post, "reject", "debit_rejected", "post", "approve")
    assert await harness.publish() == 0
    # billing emitted INSUFFICIENT_CREDITS; a second end of the run would be a lie
    assert await harness.db.pool.fetchval("SELECT count(*) FROM outbox") == 0
    row = await harness.db.pool.fetchrow(
        "SELECT status FROM pending_posts WHERE id = $1", uuid.UUID(post["pending_post_id"])
    )
    assert row["status"] == "DEBIT_REJECTED"


async def test_default_account_then_fallback_then_no_account(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    default = await tenant.account("MASTODON", default=True)
    other = await tenant.account("MASTODON")
    await tenant.account("BLUESKY", default=True)
    inactive = await tenant.account("LINKEDIN", active=False, external_account_id="urn:li:person:x")

    async def run() -> dict[str, Any]:
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY", "LINKEDIN"])
        await deliver(harness, post, "post", "debit")
        await harness.publish()
        return post

    first = await run()
    published = of_run(await harness.events("PostPublished", "t.publisher.events"), first["run_id"])
    by_platform = {e["data"]["platform"]: e["data"] for e in published}
    assert by_platform["MASTODON"]["social_account_id"] == default
    failed = of_run(await harness.events("PostPublishFailed"), first["run_id"])
    assert [(e["data"]["platform"], e["data"]["reason"]) for e in failed] == [("LINKEDIN", "NO_ACCOUNT_FOR_PLATFORM")]
    completed = of_run(await harness.events("ScheduleRunCompleted"), first["run_id"])
    assert [e["data"]["outcome"] for e in completed] == ["PARTIALLY_PUBLISHED"]

    await harness.send(tenant.event("SocialAccountDeleted", social_account_id=default))
    second = await run()
    published = of_run(await harness.events("PostPublished", "t.publisher.events"), second["run_id"])
    assert {e["data"]["platform"]: e["data"]["social_account_id"] for e in published}["MASTODON"] == other

    await harness.send(tenant.event("SocialAccountDeleted", social_account_id=other))
    await harness.send(tenant.event("SocialAccountRestored", social_account_id=default))
    third = await run()
    published = of_run(await harness.events("PostPublished", "t.publisher.events"), third["run_id"])
    assert {e["data"]["platform"]: e["data"]["social_account_id"] for e in published}["MASTODON"] == default
    assert inactive not in {e["data"]["social_account_id"] for e in published}


async def test_a_new_default_replaces_the_old_one(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    first = await tenant.account("BLUESKY", default=True)
    second = await tenant.account("BLUESKY", default=True)
    rows = await harness.db.pool.fetch(
        "SELECT social_account_id, is_default FROM brand_accounts WHERE brand_profile_id = $1", uuid.UUID(tenant.brand)
    )
    assert {str(r["social_account_id"]): r["is_default"] for r in rows} == {first: False, second: True}


async def test_nothing_is_published_for_a_deleted_organization(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    await harness.send(tenant.event("OrganizationDeleted"))
    post = tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, post, "post", "debit")
    assert await harness.publish() == 0
    assert await harness.events("PostPublished") == []
    failed = await harness.events("PostPublishFailed")
    assert [e["data"]["reason"] for e in failed] == ["NO_ACCOUNT_FOR_PLATFORM"]  # so billing refunds
    assert [e["data"]["outcome"] for e in await harness.events("ScheduleRunCompleted")] == ["ORGANIZATION_INACTIVE"]


async def test_deleted_while_publishing_no_platform_is_called_and_restored_it_publishes_again(
    harness: Harness,
) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    sandbox = harness.adapters["BLUESKY"]
    assert isinstance(sandbox, SandboxAdapter)
    first = tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, first, "post", "debit")  # inputs complete: PUBLISHING, not yet leased
    await harness.send(tenant.event("OrganizationDeleted"))
    assert await harness.publish() == 1
    assert sandbox.calls == 0
    assert await harness.events("PostPublished") == []
    (failed,) = await harness.events("PostPublishFailed")
    assert failed["data"]["reason"] == "NO_ACCOUNT_FOR_PLATFORM" and "deleted" in failed["data"]["detail"]
    (completed,) = await harness.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "ORGANIZATION_INACTIVE"

    await harness.send(tenant.event("OrganizationRestored"))
    second = tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, second, "post", "debit")
    assert await harness.publish() == 1
    assert sandbox.calls == 1
    (published,) = await harness.events("PostPublished", "t.publisher.events")
    assert published["data"]["run_id"] == second["run_id"]


async def test_a_plaintext_token_is_refused_and_shows_nowhere(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    plaintext = "ya29.a0AfH6SMB-plaintext-oauth-token-123456"
    event = tenant.event(
        "SocialAccountConnected", social_account_id=str(uuid.uuid4()), access_token="v1:" + "A" * 16 + ":" + "B" * 30
    )
    raw = json.loads(event.to_json())
    raw["data"]["access_token"] = plaintext
    outcome = await harness.consumer.handle_record(as_record(json.dumps(raw).encode()))
    assert outcome == "dead_lettered"
    letters = await harness.dead_letters()
    assert len(letters) == 1
    assert letters[0]["event_id"] == raw["id"] and letters[0]["event_type"] == "SocialAccountConnected"
    assert "access_token" in letters[0]["error"]
    everything = await _all_text(harness.db)
    assert plaintext not in everything
    assert await harness.db.pool.fetchval("SELECT count(*) FROM social_accounts") == 0


async def test_a_tampered_token_is_refused(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    account_id = str(uuid.uuid4())
    good = tenant.transport("plain-secret-token", account_id)
    version, nonce, body = good.split(":")
    tampered = f"{version}:{nonce}:{body[:-4]}{'AAAA' if body[-4:] != 'AAAA' else 'BBBB'}"
    event = tenant.event(
        "SocialAccountConnected", social_account_id=account_id, access_token=tampered, refresh_token=None
    )
    assert await harness.send(event) == "dead_lettered"
    [letter] = await harness.dead_letters()
    assert letter["error_kind"] == "token_not_for_account" and "tampered" in letter["error"]
    assert await harness.db.pool.fetchval("SELECT count(*) FROM social_accounts") == 0


async def test_tokens_are_sealed_to_their_account(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    a = await tenant.account("BLUESKY", default=True, token="plain-token-of-a")  # noqa: S106
    b = await tenant.account("MASTODON", default=True, token="plain-token-of-b")  # noqa: S106
    rows = {str(r["id"]): r for r in await harness.db.pool.fetch("SELECT * FROM social_accounts")}
    tokens = AccountTokens(harness.keyring)
    assert tokens.open(uuid.UUID(a), rows[a]["access_token"]) == "plain-token-of-a"
    # a token copied onto another account's row does not open there: publishing fails as TOKEN_INVALID
    await harness.db.pool.execute(
        "UPDATE social_accounts SET access_token = $1 WHERE id = $2", rows[a]["access_token"], uuid.UUID(b)
    )
    post = tenant.post_events(platforms=["BLUESKY", "MASTODON"])
    await deliver(harness, post, "post", "debit")
    await harness.publish()
    failed = await harness.events("PostPublishFailed")
    assert [(e["data"]["platform"], e["data"]["reason"]) for e in failed] == [("MASTODON", "TOKEN_INVALID")]
    assert "plain-token" not in await _all_text(harness.db)


async def test_rotation_reencrypts_every_token_under_the_newest_key(harness: Harness, db: Database) -> None:
    tenant = await Tenant(harness).create()
    ids = [await tenant.account("BLUESKY", token=f"plain-{i}") for i in range(5)]
    assert all(
        t.startswith("v1:") for t in await db.pool.fetchval("SELECT array_agg(access_token) FROM social_accounts")
    )
    rotated = AccountTokens(keyring(KEY_1, KEY_2))
    async with db.pool.acquire() as conn:
        report = await rotate_tokens(conn, rotated, batch_size=2)
        again = await rotate_tokens(conn, rotated, batch_size=2)
    assert (report.checked, report.rotated, report.undecryptable) == (5, 5, 0)
    assert again.rotated == 0
    rows = {
        str(r["id"]): r["access_token"] for r in await db.pool.fetch("SELECT id, access_token FROM social_accounts")
    }
    assert all(t.startswith("v2:") for t in rows.values())
    assert sorted(rotated.open(uuid.UUID(i), rows[i]) for i in ids) == [f"plain-{i}" for i in range(5)]
    # Re-encrypted with the same binding: still the stored account's own, nobody else's, and
    # not a token in transit either.
    with pytest.raises(TokenDecryptError):
        rotated.open(uuid.UUID(ids[1]), rows[ids[0]])
    with pytest.raises(TokenDecryptError):
        rotated.from_transit(uuid.UUID(tenant.org), uuid.UUID(ids[0]), rows[ids[0]])


async def test_engagement_updates_the_post_and_is_announced(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, post, "post", "debit")
    await harness.publish()
    post_id = (await harness.events("PostPublished"))[0]["data"]["post_id"]
    report = tenant.event(
        "EngagementReported",
        post_id=post_id,
        likes=30,
        comments=5,
        shares=5,
        impressions=800,
        observed_at="2027-03-15T07:00:00Z",
    )
    older = tenant.event(
        "EngagementReported",
        post_id=post_id,
        likes=1,
        comments=0,
        shares=0,
        impressions=10,
        observed_at="2027-03-14T08:00:00Z",
    )
    assert await harness.send(report) == "handled"
    assert await harness.send(older) == "handled"
    updates = await harness.events("EngagementUpdated", "t.analytics.events")
    assert len(updates) == 1
    data = updates[0]["data"]
    assert data["engagement_rate"] == pytest.approx(40 / 800)
    assert (data["brand_profile_id"], data["platform"], data["angle"]) == (tenant.brand, "BLUESKY", "USER_BENEFIT")
    post = await PostRepository().post(harness.db.pool, uuid.UUID(post_id))  # type: ignore[arg-type]
    assert post is not None and (post.likes, post.impressions) == (30, 800)
    unknown = tenant.event("EngagementReported", post_id=str(uuid.uuid4()))
    assert await harness.send(unknown) == "dead_lettered"


async def test_a_crash_after_posting_is_resumed_without_a_second_post(db: Database) -> None:
    fake = FakeBluesky()
    async with serve(fake) as base_url:
        adapter = BlueskyAdapter(
            pds_url=base_url,
            options=AdapterOptions(
                policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05),
                http=HttpSettings(read_timeout_s=2),
                egress=LOOPBACK_EGRESS,
            ),
        )
        harness = Harness(db, {"BLUESKY": adapter}, keyring(KEY_1))
        tenant = await Tenant(harness).create()
        account = await tenant.account("BLUESKY", default=True, token="good-access")  # noqa: S106
        post = tenant.post_events(platforms=["BLUESKY"])
        await deliver(harness, post, "post", "debit")

        # Worker 1 leases the post and publishes it on the platform, then dies before step 3.
        lease = uuid.uuid4()
        async with db.transaction() as conn:
            claimed = await PendingPostRepository().claim_publishing(conn, lease_token=lease, lease_s=300, limit=10)
            attempts = await PendingPostRepository().attempts_of(conn, [claimed[0].id])
            accounts = await AccountRepository().accounts_by_id(conn, [uuid.UUID(account)])
        await harness.loop._publish_pending(claimed[0], attempts, accounts)
        assert len(fake.posts) == 1
        assert await harness.publish() == 0  # still leased: nobody else touches it

        # Its lease runs out; the next round resumes it, finds the post, and completes once.
        await db.pool.execute("UPDATE pending_posts SET lease_until = now() - interval '1 second'")
        assert await harness.publish() == 1
        assert len(fake.posts) == 1 and fake.creates() == 1
        published = await harness.events("PostPublished", "t.publisher.events")
        assert len(published) == 1
        assert published[0]["data"]["external_id"] == fake.posts[0]["uri"]

        # Worker 1 comes back and tries to complete: its lease is gone, nothing is written.
        from hopcast_publisher.service_layer.publishing import complete

        async with db.transaction() as conn:
            results = (await harness.loop._publish_pending(claimed[0], attempts, accounts))[1]
            from hopcast_shared.contract import RunOutcome

            assert (
                await complete(
                    harness.loop.deps, conn, KAFKA, [(claimed[0], results, RunOutcome.PUBLISHED)], lease_token=lease
                )
                == 0
            )
        assert len(await harness.events("PostPublished", "t.publisher.events")) == 1
        assert len(await harness.events("ScheduleRunCompleted")) == 1
        await adapter.close()


@pytest.mark.parametrize(
    "url", ["http://mastodon.example", "https://10.0.0.1", "https://169.254.169.254", "https://2130706433"]
)
async def test_an_account_url_that_is_not_public_https_is_dead_lettered(harness: Harness, url: str) -> None:
    tenant = await Tenant(harness).create()
    account_id = str(uuid.uuid4())
    event = tenant.event(
        "SocialAccountConnected",
        social_account_id=account_id,
        platform="MASTODON",
        access_token=tenant.transport("plain-access", account_id),
        api_base_url="https://mastodon.example",
    )
    raw = json.loads(event.to_json())
    raw["data"]["api_base_url"] = url
    assert await harness.consumer.handle_record(as_record(json.dumps(raw).encode())) == "dead_lettered"
    (letter,) = await harness.dead_letters()
    assert "api_base_url" in letter["error"] and "public host" in letter["error"]
    assert await harness.db.pool.fetchval("SELECT count(*) FROM social_accounts") == 0


async def test_an_instance_resolving_to_a_private_address_fails_egress_refused(db: Database) -> None:
    """The name passes the contract; at connect time it resolves to loopback: the platform
    fails EGRESS_REFUSED, the post's other platform still goes out, and the server on that
    address (a real one) receives nothing."""
    fake = FakeMastodon()
    async with serve(fake) as base_url:
        port = base_url.rsplit(":", 1)[1]

        async def to_loopback(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        adapter = MastodonAdapter(
            client_id="app",
            client_secret="app-secret",  # noqa: S106
            options=AdapterOptions(egress=EgressPolicy(resolver=to_loopback)),
        )
        harness = Harness(db, {"MASTODON": adapter, "BLUESKY": SandboxAdapter("BLUESKY")}, keyring(KEY_1))
        tenant = await Tenant(harness).create()
        instance = f"https://mastodon.example:{port}"
        await tenant.account("MASTODON", default=True, token="good-access", api_base_url=instance)  # noqa: S106
        await tenant.account("BLUESKY", default=True)
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"])
        await deliver(harness, post, "post", "debit")
        assert await harness.publish() == 1
        (failed,) = await harness.events("PostPublishFailed", "t.publisher.events")
        assert failed["data"]["reason"] == "EGRESS_REFUSED"
        assert failed["data"]["detail"] == (
            "MASTODON: egress to mastodon.example refused: resolves to 127.0.0.1 (loopback)"
        )
        assert [e["data"]["platform"] for e in await harness.events("PostPublished", "t.publisher.events")] == [
            "BLUESKY"
        ]
        assert fake.calls == [] and fake.posts == []
        await adapter.close()


async def test_an_expiring_token_is_refreshed_and_stored_sealed(db: Database) -> None:
    fake = FakeBluesky()
    async with serve(fake) as base_url:
        adapter = BlueskyAdapter(pds_url=base_url, options=AdapterOptions(egress=LOOPBACK_EGRESS))
        harness = Harness(db, {"BLUESKY": adapter}, keyring(KEY_1))
        tenant = await Tenant(harness).create()
        account_id = str(uuid.uuid4())
        soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
        await harness.send(
            tenant.event(
                "SocialAccountConnected",
                social_account_id=account_id,
                platform="BLUESKY",
                api_base_url=None,
                access_token=tenant.transport("expired-access", account_id),
                refresh_token=tenant.transport("good-refresh", account_id),
                token_expires_at=soon,
            )
        )
        await harness.send(
            tenant.event("BrandAccountLinked", brand_profile_id=tenant.brand, social_account_id=account_id)
        )
        post = tenant.post_events(platforms=["BLUESKY"])
        await deliver(harness, post, "post", "debit")
        await harness.publish()
        assert len(fake.posts) == 1
        row = await db.pool.fetchrow("SELECT access_token, refresh_token FROM social_accounts")
        tokens = AccountTokens(harness.keyring)
        assert tokens.open(uuid.UUID(account_id), row["access_token"]) == "fresh-access"
        assert "fresh-access" not in await _all_text(db)
        await adapter.close()


async def test_http_reads(harness: Harness) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY", "LINKEDIN"])
    await deliver(harness, post, "post", "debit")
    await harness.publish()
    post_id = (await harness.events("PostPublished"))[0]["data"]["post_id"]
    await harness.send(
        tenant.event("EngagementReported", post_id=post_id, likes=8, comments=1, shares=1, impressions=100)
    )

    class Runtime:
        db = harness.db

    handlers = {r.template: r.handler for r in routes(Runtime())}  # type: ignore[arg-type]
    angles = await handlers["/brands/{id}/angle-performance"]({"id": tenant.brand}, {})
    assert angles.status == 200
    assert angles.body["angles"] == [
        {
            "angle": "USER_BENEFIT",
            "posts": 1,
            "likes": 8,
            "comments": 1,
            "shares": 1,
            "impressions": 100,
            "engagement_rate": 0.1,
            "avg_engagement_rate": 0.1,
        }
    ]
    platforms = await handlers["/organizations/{id}/platform-performance"]({"id": tenant.org}, {"days": "7"})
    assert [p["platform"] for p in platforms.body["platforms"]] == ["BLUESKY"]
    pending = await handlers["/pending-posts/{id}"]({"id": post["pending_post_id"]}, {})
    assert pending.body["status"] == "PARTIALLY_PUBLISHED"
    results = {r["platform"]: r for r in pending.body["platform_results"]}
    assert (
        results["BLUESKY"]["post_id"] == post_id and results["LINKEDIN"]["failure_reason"] == "NO_ACCOUNT_FOR_PLATFORM"
    )
    one = await handlers["/posts/{id}"]({"id": post_id}, {})
    assert one.status == 200 and one.body["engagement_rate"] == 0.1
    assert (await handlers["/posts/{id}"]({"id": str(uuid.uuid4())}, {})).status == 404
    waiting = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    await deliver(harness, waiting, "post")
    status = await handlers["/pending-posts/{id}"]({"id": waiting["pending_post_id"]}, {})
    assert status.body["waiting_for"] == ["CreditsDebited", "PendingPostApproved"]


async def test_soft_delete_restore_and_purge(harness: Harness, db: Database) -> None:
    tenant = await Tenant(harness).create()
    account = await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, post, "post", "debit")
    await harness.publish()
    post_id = uuid.UUID((await harness.events("PostPublished"))[0]["data"]["post_id"])
    async with db.transaction() as conn:
        assert await PostRepository().set_post_deleted(conn, post_id, True)
        assert await PostRepository().set_post_deleted(conn, post_id, False)
        assert await PostRepository().set_post_deleted(conn, post_id, True)
    await harness.send(tenant.event("SocialAccountDeleted", social_account_id=account))
    async with db.transaction() as conn:
        assert set((await purge(conn, 30)).values()) == {0}
    await db.pool.execute("UPDATE posts SET deleted_at = now() - interval '31 days'")
    await db.pool.execute("UPDATE social_accounts SET deleted_at = now() - interval '31 days'")
    async with db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts == {
        "posts": 1,
        "pending_posts": 0,
        "brand_accounts": 0,
        "social_accounts": 1,
        "brands": 0,
        "organizations": 0,
    }
    assert await db.pool.fetchval("SELECT count(*) FROM brand_accounts") == 0


async def test_purge_deletes_an_organization_deleted_longer_ago_than_the_retention_with_all_its_data(
    harness: Harness, db: Database
) -> None:
    async def publish_one(tenant: Tenant) -> None:
        await tenant.account("BLUESKY", default=True)
        await deliver(harness, tenant.post_events(platforms=["BLUESKY"]), "post", "debit")
        await harness.publish()

    old, recent, live = [await Tenant(harness).create() for _ in range(3)]
    for tenant in (old, recent, live):
        await publish_one(tenant)
    gone_brand = live.brand  # a brand deleted long ago goes, with its links, pending posts and posts
    live.brand = str(uuid.uuid4())
    await harness.send(live.event("BrandProfileCreated", brand_profile_id=live.brand))
    await publish_one(live)
    await harness.send(live.event("BrandProfileDeleted", brand_profile_id=gone_brand))
    for tenant in (old, recent):
        await harness.send(tenant.event("OrganizationDeleted"))
    await db.pool.execute("UPDATE organizations SET deleted_at = now() - interval '31 days' WHERE id = $1", old.org)
    await db.pool.execute("UPDATE brands SET deleted_at = now() - interval '31 days' WHERE id = $1", gone_brand)

    async with db.transaction() as conn:
        # The service's purge with the kernel's housekeeping, as the purge job runs it.
        counts = await purge_database(conn, purge, older_than_days=30, inbox_days=30)
    assert counts is not None
    assert counts["organizations"] == 1 and counts["brands"] == 2  # the old organization's and the live one's
    assert counts["posts"] == 2 and counts["pending_posts"] == 2 and counts["social_accounts"] == 1

    async def orgs_in(table: str, column: str = "organization_id") -> set[str]:
        return {str(r[0]) for r in await db.pool.fetch(f"SELECT DISTINCT {column} FROM {table}")}

    for table in ("posts", "pending_posts", "social_accounts", "brand_accounts", "brands"):
        assert await orgs_in(table) == {recent.org, live.org}, table
    assert await orgs_in("organizations", "id") == {recent.org, live.org}
    brands_left = {str(r[0]) for r in await db.pool.fetch("SELECT brand_profile_id FROM posts")}
    assert gone_brand not in brands_left and live.brand in brands_left
    # Nothing of it is left (accounts and their tokens included) but outbox rows, which go once Kafka has them.
    assert old.org not in await _all_text_but_outbox(db)


async def _all_text_but_outbox(db: Database) -> str:
    parts = []
    tables = await db.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    for t in (t for t in tables if t["tablename"] != "outbox"):
        for row in await db.pool.fetch(f'SELECT * FROM "{t["tablename"]}"'):
            parts.extend(str(v) for v in row.values())
    return "\n".join(parts)


async def _all_text(db: Database) -> str:
    """Every row of every table of the publisher's database (outbox payloads decoded), as text."""
    parts = []
    tables = await db.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    for t in tables:
        for row in await db.pool.fetch(f'SELECT * FROM "{t["tablename"]}"'):
            for value in row.values():
                parts.append(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    return "\n".join(parts)


async def test_the_rotate_tokens_command(harness: Harness, db: Database) -> None:
    """`hopcast publisher rotate-tokens` (the design's `hopcast tokens rotate`) in its own process."""
    import asyncio
    import subprocess
    import sys

    tenant = await Tenant(harness).create()
    ids = [await tenant.account("MASTODON", token=f"plain-{i}") for i in range(3)]
    env = {**os.environ, "PUBLISHER_DATABASE_URL": db.url, "TOKEN_KEYS": f"1:{KEY_1},2:{KEY_2}", "HOPCAST_ENV": "test"}
    command = [sys.executable, "-c", "from hopcast_publisher.entrypoints.cli import app; app()", "rotate-tokens"]
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 account(s) checked, 3 rotated" in done.stdout
    rows = {
        str(r["id"]): r["access_token"] for r in await db.pool.fetch("SELECT id, access_token FROM social_accounts")
    }
    tokens = AccountTokens(keyring(KEY_1, KEY_2))
    assert all(t.startswith("v2:") for t in rows.values())
    assert sorted(tokens.open(uuid.UUID(i), rows[i]) for i in ids) == ["plain-0", "plain-1", "plain-2"]
    missing = [sys.executable, "-c", "from hopcast_publisher.entrypoints.cli import app; app()", "delete-post"]
    gone = await asyncio.to_thread(
        subprocess.run, [*missing, str(uuid.uuid4())], env=env, capture_output=True, text=True, timeout=120
    )
    assert gone.returncode == 1 and "no post" in gone.stderr


async def test_the_publishing_loop_is_woken_when_a_post_starts_publishing(harness: Harness, db: Database) -> None:
    import asyncio

    import asyncpg

    woken = asyncio.Event()
    listener = await asyncpg.connect(db.url)
    await listener.add_listener(PUBLISH_CHANNEL, lambda *_: woken.set())
    try:
        tenant = await Tenant(harness).create()
        await tenant.account("BLUESKY", default=True)
        post = tenant.post_events(platforms=["BLUESKY"])
        await deliver(harness, post, "post")
        await asyncio.sleep(0.2)
        assert not woken.is_set()  # waiting for its debit: nothing to publish yet
        await deliver(harness, post, "debit")
        await asyncio.wait_for(woken.wait(), timeout=5)
    finally:
        await listener.close()


class PoisonedSandbox(SandboxAdapter):
    """The sandbox, except for the pending posts named: it answers those with a URL the
    contract refuses, or an external id the database refuses (a NUL), as a broken adapter
    or platform might."""

    def __init__(self, platform: str, *, bad_url: set[str], bad_id: set[str]) -> None:
        super().__init__(platform)
        self.bad_url, self.bad_id = bad_url, bad_id

    async def publish(self, account: Any, request: Any, *, resumed: bool, on_refreshed: Any) -> Any:
        published = await super().publish(account, request, resumed=resumed, on_refreshed=on_refreshed)
        if any(pending in request.idempotency_key for pending in self.bad_url):
            return replace(published, external_url="not a url")
        if any(pending in request.idempotency_key for pending in self.bad_id):
            return replace(published, external_id=published.external_id + "\x00")
        return published


COMPLETION_FAILURES = "hopcast_publisher_completion_failures_total"


async def test_a_post_that_cannot_be_completed_does_not_hold_up_the_others(db: Database) -> None:
    bad_url: set[str] = set()
    bad_id: set[str] = set()
    adapters: dict[str, PlatformAdapter] = {
        "BLUESKY": PoisonedSandbox("BLUESKY", bad_url=bad_url, bad_id=set()),
        "MASTODON": PoisonedSandbox("MASTODON", bad_url=set(), bad_id=bad_id),
    }
    settings = PublisherSettings(lease_s=300, http_deadline_s=10, completion_max_attempts=3, completion_backoff_s=60)
    harness = Harness(db, adapters, keyring(KEY_1), settings)
    posts: list[dict[str, Any]] = []
    for _ in range(3):  # three organizations
        tenant = await Tenant(harness).create()
        await tenant.account("BLUESKY", default=True)
        await tenant.account("MASTODON", default=True)
        posts += [tenant.post_events(platforms=["BLUESKY", "MASTODON"]) for _ in range(3)]
    # One post's PostPublished breaks the contract, another's row breaks the database, and a
    # third row is corrupt (no run): not even its failure can be written as events.
    invalid_event, refused_row, corrupt = posts[1], posts[4], posts[7]
    bad_url.add(invalid_event["pending_post_id"])
    bad_id.add(refused_row["pending_post_id"])
    for post in posts:
        await deliver(harness, post, "post", "debit")
    await db.pool.execute("UPDATE pending_posts SET run_id = NULL WHERE id = $1", uuid.UUID(corrupt["pending_post_id"]))
    poisoned = [invalid_event, refused_row, corrupt]
    healthy = [p for p in posts if p not in poisoned]

    def counted(result: str) -> float:
        return REGISTRY.get_sample_value(COMPLETION_FAILURES, {"result": result}) or 0

    before = {r: counted(r) for r in ("retried", "given_up", "abandoned")}
    assert await harness.publish() == 9  # returns: the round does not crash
    published = await harness.events("PostPublished", "t.publisher.events")
    completed = await harness.events("ScheduleRunCompleted")
    for post in healthy:
        assert sorted(e["data"]["platform"] for e in of_run(published, post["run_id"])) == ["BLUESKY", "MASTODON"]
        assert [e["data"]["outcome"] for e in of_run(completed, post["run_id"])] == ["PUBLISHED"]
    for post in poisoned:
        row = await PendingPostRepository().pending_post(db.pool, uuid.UUID(post["pending_post_id"]))  # type: ignore[arg-type]
        assert row["status"] == "PUBLISHING" and row["completion_failures"] == 1
        assert row["lease_until"] > datetime.now(UTC) + timedelta(seconds=50)  # backing off
    assert (
        "external_url"
        in (await PendingPostRepository().pending_post(db.pool, uuid.UUID(invalid_event["pending_post_id"])))[  # type: ignore[arg-type,index]
            "completion_error"
        ]
    )
    assert await harness.db.pool.fetchval("SELECT count(*) FROM posts") == 2 * len(healthy)
    assert await harness.publish() == 0  # nothing claimable while they back off

    for attempt in (2, 3):  # each backoff runs out; they are tried again, alone
        await db.pool.execute("UPDATE pending_posts SET lease_until = now() WHERE status = 'PUBLISHING'")
        assert await harness.publish() == 3
        if attempt == 2:
            rows = await db.pool.fetch(
                "SELECT completion_failures, lease_until FROM pending_posts WHERE status = 'PUBLISHING'"
            )
            assert len(rows) == 3 and all(r["completion_failures"] == 2 for r in rows)
            assert all(r["lease_until"] > datetime.now(UTC) + timedelta(seconds=110) for r in rows)  # doubled
    assert await harness.publish() == 0

    published = await harness.events("PostPublished", "t.publisher.events")
    failed = await harness.events("PostPublishFailed", "t.publisher.events")
    completed = await harness.events("ScheduleRunCompleted")
    for post in (invalid_event, refused_row):
        assert of_run(published, post["run_id"]) == []
        mine = of_run(failed, post["run_id"])
        assert sorted((e["data"]["platform"], e["data"]["reason"]) for e in mine) == [
            ("BLUESKY", "RETRIES_EXHAUSTED"),
            ("MASTODON", "RETRIES_EXHAUSTED"),
        ]
        assert all("could not complete this post after 3 attempts" in e["data"]["detail"] for e in mine)
        assert [e["data"]["outcome"] for e in of_run(completed, post["run_id"])] == ["PUBLISH_FAILED"]
        row = await PendingPostRepository().pending_post(db.pool, uuid.UUID(post["pending_post_id"]))  # type: ignore[arg-type]
        assert row["status"] == "PUBLISH_FAILED" and row["completion_failures"] == 3
    # The platform did take them: the detail says where, so no one has to guess.
    (on_bluesky,) = [e for e in of_run(failed, invalid_event["run_id"]) if e["data"]["platform"] == "BLUESKY"]
    assert on_bluesky["data"]["detail"].startswith("published on BLUESKY as sandbox-bluesky-")
    # The corrupt row ends without events (it has no run to end), loudly.
    row = await PendingPostRepository().pending_post(db.pool, uuid.UUID(corrupt["pending_post_id"]))  # type: ignore[arg-type]
    assert row["status"] == "PUBLISH_FAILED" and "ending it failed too" in row["completion_error"]
    # Every run with a run id ended exactly once, and nothing was posted twice.
    assert len(completed) == len(posts) - 1
    assert sorted(e["data"]["run_id"] for e in completed) == sorted(p["run_id"] for p in posts if p is not corrupt)
    assert await harness.db.pool.fetchval("SELECT count(*) FROM posts") == 2 * len(healthy)
    assert counted("retried") - before["retried"] == 6
    assert counted("given_up") - before["given_up"] == 2
    assert counted("abandoned") - before["abandoned"] == 1


async def test_a_consumer_batch_of_inputs_in_any_order_decides_as_one_at_a_time(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    await tenant.account("MASTODON", default=True)
    scenarios: list[tuple[str, bool, tuple[str, ...]]] = [
        *(("PUBLISHED", False, order) for order in itertools.permutations(["post", "debit"])),
        *(("PUBLISHED", True, order) for order in itertools.permutations(["post", "debit", "approve"])),
        ("PUBLISHED", False, ("debit", "post", "debit")),  # a redelivery in the same batch
        ("REJECTED", True, ("post", "debit", "reject", "approve")),
        ("REJECTED", True, ("reject", "post", "debit")),
        ("DEBIT_REJECTED", True, ("reject", "debit_rejected", "post", "approve")),
        ("WAITING", True, ("debit", "post")),
    ]

    def records() -> tuple[list[Any], list[dict[str, Any]]]:
        posts = [tenant.post_events(platforms=["BLUESKY", "MASTODON"], requires_approval=a) for _, a, _ in scenarios]
        lanes = [
            [as_record(p[n], topic=TOPIC.get(n, "upstream.events")) for n in order]
            for p, (_, _, order) in zip(posts, scenarios, strict=True)
        ]
        # Interleaved: each pending post's inputs in their order, mixed with the others'.
        mixed = [lane[i] for i in range(4) for lane in lanes if i < len(lane)]
        return mixed, posts

    async def outcome_of(posts: list[dict[str, Any]]) -> list[tuple[str, list[str], int]]:
        await harness.publish()
        completed = await harness.events("ScheduleRunCompleted")
        published = await harness.events("PostPublished", "t.publisher.events")
        seen = []
        for post in posts:
            row = await PendingPostRepository().pending_post(harness.db.pool, uuid.UUID(post["pending_post_id"]))  # type: ignore[arg-type]
            outcomes = [e["data"]["outcome"] for e in of_run(completed, post["run_id"])]
            seen.append((row["status"], outcomes, len(of_run(published, post["run_id"]))))
        return seen

    one_by_one, posts = records()
    for record in one_by_one:
        assert await harness.consumer.handle_record(record) in ("handled", "duplicate")
    expected = await outcome_of(posts)
    assert [s for s, _, _ in expected] == [s for s, _, _ in scenarios]
    assert [o for _, o, _ in expected] == [[s] if s in ("PUBLISHED", "REJECTED") else [] for s, _, _ in scenarios]
    assert [n for _, _, n in expected] == [2 if s == "PUBLISHED" else 0 for s, _, _ in scenarios]

    together, posts = records()
    with caplog.at_level("INFO"):
        outcomes = await harness.consumer.handle_batch(together)
    assert "one by one" not in caplog.text  # the batched handler took them all at once
    assert outcomes.count("duplicate") == 1 and outcomes.count("handled") == len(together) - 1
    assert await outcome_of(posts) == expected


async def test_an_input_of_another_tenant_in_a_batch_is_dead_lettered_and_the_rest_handled(harness: Harness) -> None:
    tenant, other = await Tenant(harness).create(), await Tenant(harness).create()
    await tenant.account("BLUESKY", default=True)
    mine, next_one = tenant.post_events(platforms=["BLUESKY"]), tenant.post_events(platforms=["BLUESKY"])
    await deliver(harness, mine, "post")  # the pending post is the tenant's
    theirs = other.event("CreditsDebited", pending_post_id=mine["pending_post_id"], run_id=mine["run_id"])
    batch = [
        as_record(mine["debit"], topic="billing.events"),
        as_record(next_one["post"], topic="content.events"),
        as_record(theirs, topic="billing.events"),
        as_record(next_one["debit"], topic="billing.events"),
    ]
    assert await harness.consumer.handle_batch(batch) == ["handled", "handled", "dead_lettered", "handled"]
    assert "another organization" in (await harness.dead_letters())[0]["error"]
    assert await harness.publish() == 2
    published = await harness.events("PostPublished", "t.publisher.events")
    assert sorted(e["data"]["run_id"] for e in published) == sorted([mine["run_id"], next_one["run_id"]])
