"""The publishing loop when things go wrong, on the real database: a worker that dies after
posting is resumed without a second post, a post that cannot be completed backs off and gives
up without holding up the others, and the loop is woken as soon as a post starts publishing.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hopcast_publisher.adapters.accounts import AccountRepository
from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.platforms.base import PlatformAdapter, RetryPolicy
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.publishing_loop import PUBLISH_CHANNEL
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeBluesky, serve
from hopcast_shared.db import Database
from hopcast_shared.settings import KafkaSettings

pytestmark = pytest.mark.integration


async def test_a_crash_after_posting_is_resumed_without_a_second_post(db: Database, harness_with: Any) -> None:
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
        harness = harness_with({"BLUESKY": adapter})
        tenant = await harness.tenant()
        account = await tenant.account("BLUESKY", default=True, token="good-access")  # noqa: S106
        post = tenant.post_events(platforms=["BLUESKY"])
        await harness.deliver(post, "post", "debit")

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
                    harness.loop.deps,
                    conn,
                    KafkaSettings(topic_prefix="t."),
                    [(claimed[0], results, RunOutcome.PUBLISHED)],
                    lease_token=lease,
                )
                == 0
            )
        assert len(await harness.events("PostPublished", "t.publisher.events")) == 1
        assert len(await harness.events("ScheduleRunCompleted")) == 1
        await adapter.close()


async def test_the_publishing_loop_is_woken_when_a_post_starts_publishing(harness: Any, db: Database) -> None:
    import asyncio

    import asyncpg

    woken = asyncio.Event()
    listener = await asyncpg.connect(db.url)
    await listener.add_listener(PUBLISH_CHANNEL, lambda *_: woken.set())
    try:
        tenant = await harness.tenant()
        await tenant.account("BLUESKY", default=True)
        post = tenant.post_events(platforms=["BLUESKY"])
        await harness.deliver(post, "post")
        await asyncio.sleep(0.2)
        assert not woken.is_set()  # waiting for its debit: nothing to publish yet
        await harness.deliver(post, "debit")
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


async def test_a_post_that_cannot_be_completed_does_not_hold_up_the_others(db: Database, harness_with: Any) -> None:
    bad_url: set[str] = set()
    bad_id: set[str] = set()
    adapters: dict[str, PlatformAdapter] = {
        "BLUESKY": PoisonedSandbox("BLUESKY", bad_url=bad_url, bad_id=set()),
        "MASTODON": PoisonedSandbox("MASTODON", bad_url=set(), bad_id=bad_id),
    }
    settings = PublisherSettings(lease_s=300, http_deadline_s=10, completion_max_attempts=3, completion_backoff_s=60)
    harness = harness_with(adapters, settings)
    posts: list[dict[str, Any]] = []
    for _ in range(3):  # three organizations
        tenant = await harness.tenant()
        await tenant.account("BLUESKY", default=True)
        await tenant.account("MASTODON", default=True)
        posts += [tenant.post_events(platforms=["BLUESKY", "MASTODON"]) for _ in range(3)]
    # One post's PostPublished breaks the contract, another's row breaks the database, and a
    # third row is corrupt (no run): not even its failure can be written as events.
    invalid_event, refused_row, corrupt = posts[1], posts[4], posts[7]
    bad_url.add(invalid_event["pending_post_id"])
    bad_id.add(refused_row["pending_post_id"])
    for post in posts:
        await harness.deliver(post, "post", "debit")
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
        assert sorted(e["data"]["platform"] for e in harness.of_run(published, post["run_id"])) == [
            "BLUESKY",
            "MASTODON",
        ]
        assert [e["data"]["outcome"] for e in harness.of_run(completed, post["run_id"])] == ["PUBLISHED"]
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
        assert harness.of_run(published, post["run_id"]) == []
        mine = harness.of_run(failed, post["run_id"])
        assert sorted((e["data"]["platform"], e["data"]["reason"]) for e in mine) == [
            ("BLUESKY", "RETRIES_EXHAUSTED"),
            ("MASTODON", "RETRIES_EXHAUSTED"),
        ]
        assert all("could not complete this post after 3 attempts" in e["data"]["detail"] for e in mine)
        assert [e["data"]["outcome"] for e in harness.of_run(completed, post["run_id"])] == ["PUBLISH_FAILED"]
        row = await PendingPostRepository().pending_post(db.pool, uuid.UUID(post["pending_post_id"]))  # type: ignore[arg-type]
        assert row["status"] == "PUBLISH_FAILED" and row["completion_failures"] == 3
    # The platform did take them: the detail says where, so no one has to guess.
    (on_bluesky,) = [e for e in harness.of_run(failed, invalid_event["run_id"]) if e["data"]["platform"] == "BLUESKY"]
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
