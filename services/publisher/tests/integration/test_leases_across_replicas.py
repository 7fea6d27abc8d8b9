"""A lease per pending post, kept alive while its call waits, on the real database: two
publisher replicas (each with its own live adapters, limiter and lease keeper) share 10
pending LinkedIn posts on the fake LinkedIn, with a lease shorter than their queue, and
exactly 10 posts come out. Also the renewal statement and the keeper's confirmation alone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.leases import renew_leases
from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.platforms.lease import LeaseLost
from hopcast_publisher.adapters.platforms.registry import build_adapters
from hopcast_publisher.bootstrap import MIGRATIONS, definition
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.lease_keeper import LeaseKeeper
from hopcast_publisher.entrypoints.publishing_loop import PublishingLoop
from hopcast_publisher.testing import FakeLinkedIn, serve
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import account_transit_aad, load_keyring
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import CryptoSettings, KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration

KEYRING = load_keyring(CryptoSettings(token_keys=f"1:{base64.b64encode(os.urandom(32)).decode()}"))
TOKENS = AccountTokens(KEYRING)
KAFKA = KafkaSettings(topic_prefix="t.")
MEMBER, PAGE = "urn:li:person:abc123", "urn:li:organization:2414183"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("publisher", MIGRATIONS), max_size=12)
    yield database
    await database.close()


def replica_settings(linkedin_url: str) -> PublisherSettings:
    """A replica whose lease (2 s, renewed every 0.67 s) is far shorter than its queue of
    calls (one LinkedIn account, one call every 0.2 s at most, each taking 0.3 s)."""
    return PublisherSettings(
        adapter="live",
        linkedin_api_url=linkedin_url,
        linkedin_oauth_url=linkedin_url,
        egress_allow_loopback=True,
        lease_s=2,
        http_connect_timeout_s=0.2,
        http_read_timeout_s=0.8,
        http_backoff_base_s=0.05,
        http_deadline_s=20,
        account_min_interval_s=0.2,
        poll_interval_s=0.2,
    )


async def pending_linkedin_posts(db: Database, author: str, count: int) -> list[str]:
    """`count` drafted and paid posts of one brand on one LinkedIn account (`author`), each
    PUBLISHING once handled; their texts."""
    handlers = definition(settings=PublisherSettings(), adapters={}, keyring=KEYRING).handlers
    service = ServiceSettings(name="publisher", database_url=db.url, http_port=18084)
    consumer = EventConsumer("publisher", db, handlers, kafka=KAFKA, settings=service)
    org, brand, account = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())

    async def handled(type_name: str, topic: str = "upstream.events", **data: Any) -> None:
        event = example_event(type_name, organization_id=org, time=datetime.now(UTC), **data)
        assert await consumer.handle_record(as_record(event, topic=topic)) == "handled"

    await handled("OrganizationCreated")
    await handled("BrandProfileCreated", brand_profile_id=brand)
    sealed = KEYRING.encrypt("good-access", associated_data=account_transit_aad(org, account))
    await handled(
        "SocialAccountConnected",
        social_account_id=account,
        platform="LINKEDIN",
        external_account_id=author,
        api_base_url=None,
        access_token=sealed,
        refresh_token=None,
        token_expires_at=None,
    )
    await handled("BrandAccountLinked", brand_profile_id=brand, social_account_id=account, is_default=True)
    texts = [f"Spring menu, part {i + 1} of {count}" for i in range(count)]
    for text in texts:
        pending, run = str(uuid.uuid4()), str(uuid.uuid4())
        draft = {"pending_post_id": pending, "run_id": run, "brand_profile_id": brand, "platforms": ["LINKEDIN"]}
        draft |= {"requires_approval": False, "texts": {"LINKEDIN": text}, "media": []}
        await handled("PendingPostCreated", "content.events", **draft)
        await handled("CreditsDebited", "billing.events", pending_post_id=pending, run_id=run)
    return texts


async def publishing(db: Database) -> int:
    return int(await db.pool.fetchval("SELECT count(*) FROM pending_posts WHERE status = 'PUBLISHING'"))


async def until(condition: Any, timeout_s: float = 60) -> None:
    """Poll the database (nothing to wait on: the replicas change it)."""
    async with asyncio.timeout(timeout_s):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def published_once_each(db: Database) -> int:
    """How many pending posts have a PostPublished on publisher.events; fails if one has two."""
    rows = await db.pool.fetch(
        "SELECT convert_from(payload, 'UTF8')::jsonb #>> '{data,pending_post_id}' AS pending FROM outbox"
        " WHERE event_type = 'PostPublished' AND topic = 't.publisher.events'"
    )
    pending = [r["pending"] for r in rows]
    assert len(pending) == len(set(pending))
    return len(pending)


class Unreachable:
    """A database this replica's renewals cannot reach (a stalled or partitioned worker)."""

    def transaction(self) -> Any:
        raise ConnectionRefusedError("the database is unreachable from this replica")


class Replicas:
    """Two publisher replicas on one database, each with its own live adapters (and so its own
    per-account limiter) and lease keeper, in front of one slow fake LinkedIn."""

    def __init__(self, db: Database, fake: FakeLinkedIn, url: str) -> None:
        self.db, self.fake = db, fake
        self.settings = replica_settings(url)
        self.adapters = [build_adapters(self.settings) for _ in range(2)]
        self.loops = [PublishingLoop(db, KAFKA, adapters, TOKENS, self.settings) for adapters in self.adapters]
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, index: int) -> None:
        self.tasks.append(asyncio.create_task(self.loops[index].run()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for adapters in self.adapters:
            for adapter in adapters.values():
                await adapter.close()


@contextlib.asynccontextmanager
async def replicas_on_linkedin(db: Database) -> AsyncIterator[Replicas]:
    fake = FakeLinkedIn()
    fake.create_delay_s = 0.3
    async with serve(fake) as url:
        replicas = Replicas(db, fake, url)
        try:
            yield replicas
        finally:
            await replicas.stop()


async def test_two_replicas_with_a_lease_shorter_than_the_queue_make_exactly_ten_posts(db: Database) -> None:
    async with replicas_on_linkedin(db) as replicas:
        texts = await pending_linkedin_posts(db, MEMBER, 10)
        replicas.start(0)
        replicas.start(1)
        await until(lambda: _none_left(db))
    assert sorted(p["commentary"] for p in replicas.fake.posts) == sorted(texts)  # 10 posts, each once
    assert replicas.fake.creates() == 10
    assert await published_once_each(db) == 10
    assert sum(loop.leases.renewals for loop in replicas.loops) >= 1  # the queue outlasted the first lease


async def test_a_replica_that_cannot_renew_sends_nothing_late_and_the_other_finishes_once(db: Database) -> None:
    async with replicas_on_linkedin(db) as replicas:
        texts = await pending_linkedin_posts(db, PAGE, 10)
        stalled = replicas.loops[0]
        stalled.leases = LeaseKeeper(Unreachable(), lease_s=2, margin_s=0.25)  # type: ignore[arg-type]
        replicas.start(0)
        await until(_all_leased(db))  # the stalled replica claimed all ten first
        replicas.start(1)
        await until(lambda: _none_left(db))
    assert sorted(p["commentary"] for p in replicas.fake.posts) == sorted(texts)
    assert await published_once_each(db) == 10
    resumed = await db.pool.fetchval("SELECT count(*) FROM pending_posts WHERE claims > 1")
    assert resumed >= 1  # dropped by the stalled replica, looked up and finished by the other


async def _dropped_before_any_call(db: Database, replicas: Replicas) -> None:
    """One round of the first replica, whose lease cannot be confirmed for a call (too short
    for its margin, and renewing fails): its post is dropped without a call; then the lease
    runs out."""
    dropping = replicas.loops[0]
    dropping.leases = LeaseKeeper(Unreachable(), lease_s=2, margin_s=5)  # type: ignore[arg-type]
    assert await dropping.publish_batch() == 1
    assert replicas.fake.calls == [] and await publishing(db) == 1
    await db.pool.execute("UPDATE pending_posts SET lease_until = now() - interval '1 second'")


async def test_a_post_resumed_before_any_call_was_sent_is_posted_without_asking(db: Database) -> None:
    async with replicas_on_linkedin(db) as replicas:
        [text] = await pending_linkedin_posts(db, MEMBER, 1)  # a personal account: it could not ask
        await _dropped_before_any_call(db, replicas)
        assert await replicas.loops[1].publish_batch() == 1
    assert [p["commentary"] for p in replicas.fake.posts] == [text]
    assert ("GET", "/rest/posts") not in replicas.fake.calls  # never sent, so nothing to look up
    assert await published_once_each(db) == 1


async def test_a_post_resumed_after_a_call_was_recorded_asks_first(db: Database) -> None:
    async with replicas_on_linkedin(db) as replicas:
        await pending_linkedin_posts(db, MEMBER, 1)
        await _dropped_before_any_call(db, replicas)
        # As a worker that recorded its call and died before it could tell what came of it.
        await db.pool.execute("UPDATE publish_attempts SET status = 'SENT'")
        assert await replicas.loops[1].publish_batch() == 1
    assert replicas.fake.posts == [] and replicas.fake.creates() == 0  # asked, and not posted blindly
    assert ("GET", "/rest/posts") in replicas.fake.calls
    reason = await db.pool.fetchval(
        "SELECT convert_from(payload, 'UTF8')::jsonb #>> '{data,reason}' FROM outbox"
        " WHERE event_type = 'PostPublishFailed' AND topic = 't.publisher.events'"
    )
    assert reason == "OUTCOME_UNKNOWN"


def _all_leased(db: Database) -> Any:
    async def leased() -> bool:
        query = "SELECT count(*) = 10 FROM pending_posts WHERE lease_token IS NOT NULL"
        return bool(await db.pool.fetchval(query))

    return leased


async def _none_left(db: Database) -> bool:
    return await publishing(db) == 0


async def _claimed(db: Database, count: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    await pending_linkedin_posts(db, MEMBER, count)
    token = uuid.uuid4()
    async with db.transaction() as conn:
        claimed = await PendingPostRepository().claim_publishing(conn, lease_token=token, lease_s=1, limit=count)
    return token, [p.id for p in claimed]


async def test_one_statement_renews_the_leases_still_held_and_names_the_lost_ones(db: Database) -> None:
    token, (held, taken, locked) = await _claimed(db, 3)
    await db.pool.execute("UPDATE pending_posts SET lease_token = $2 WHERE id = $1", taken, uuid.uuid4())
    before = await db.pool.fetchval("SELECT lease_until FROM pending_posts WHERE id = $1", locked)
    async with db.transaction() as other:  # a completion of the locked one under way
        await other.execute("SELECT 1 FROM pending_posts WHERE id = $1 FOR UPDATE", locked)
        async with db.transaction() as conn:
            renewal = await renew_leases(conn, [(held, token), (taken, token), (locked, token)], lease_s=600)
    assert renewal.renewed == {held} and renewal.lost == {taken}  # the locked one: neither, not waited for
    rows = {r["id"]: r["lease_until"] for r in await db.pool.fetch("SELECT id, lease_until FROM pending_posts")}
    assert (rows[held] - datetime.now(UTC)).total_seconds() > 500
    assert rows[locked] == before


async def test_a_lease_near_its_end_is_renewed_before_the_call_and_a_lost_one_refuses_it(db: Database) -> None:
    token, (mine, taken) = await _claimed(db, 2)
    now = [0.0]
    keeper = LeaseKeeper(db, lease_s=60, margin_s=0.25, clock=lambda: now[0])
    keeper.hold(token, [mine, taken], since=0.0)
    try:
        await keeper.lease(mine).confirm(10)
        assert keeper.renewals == 0  # 60 s left: nothing to do
        now[0] = 55.0
        await keeper.lease(mine).confirm(10)  # 5 s left: renewed first
        assert keeper.renewals == 1 and keeper.left_s(mine) == 60
        await db.pool.execute("UPDATE pending_posts SET lease_token = $2 WHERE id = $1", taken, uuid.uuid4())
        now[0] = 110.0  # another worker claimed it; 5 s left as far as this keeper knows: renewing says so
        with pytest.raises(LeaseLost):
            await keeper.lease(taken).confirm(10)
        assert keeper.left_s(taken) == -math.inf  # forgotten: never renewed again
    finally:
        keeper.release([mine, taken])
        await keeper.close()
