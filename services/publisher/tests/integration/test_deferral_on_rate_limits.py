"""A platform's rate limit defers that platform until its reset instead of failing it: the
publishing loop records the deferral (retry_at on the attempt, the post's lease pushed to
it), emits PostPublishDeferred, frees the worker, and publishes at the reset, exactly once.
Past the longest deferral it fails RETRIES_EXHAUSTED. Two loops on one database share an
account's limits. On the real database, against the fake X server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.base import RetryPolicy
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.http import routes
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeX, Fault, Request, serve
from hopcast_shared.db import Database

pytestmark = pytest.mark.integration

OPTIONS = AdapterOptions(
    policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, deadline_s=10, max_wait_s=0.5),
    http=HttpSettings(read_timeout_s=0.3),
    egress=LOOPBACK_EGRESS,
)


def daily_cap(reset_in_s: float) -> dict[str, str]:
    """X's answer headers once the user's 24-hour posting cap is used up."""
    reset = str(int(time.time() + reset_in_s))
    return {"x-user-limit-24hour-limit": "17", "x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": reset}


def rfc3339(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
async def fake_x() -> AsyncIterator[tuple[FakeX, str]]:
    fake = FakeX()
    async with serve(fake) as base_url:
        yield fake, base_url


def x_harness(harness_with: Any, base_url: str, **settings: Any) -> Any:
    """The publisher (conftest's harness) with X on the fake server and Bluesky in the sandbox."""
    adapters = {
        "TWITTER": XAdapter(api_url=base_url, client_id="app", options=OPTIONS),
        "BLUESKY": SandboxAdapter("BLUESKY"),
    }
    return harness_with(adapters, PublisherSettings(lease_s=300, http_deadline_s=10, **settings))


async def x_tenant(h: Any) -> tuple[Any, str]:
    tenant = await h.tenant()
    account = await tenant.account(
        "TWITTER",
        default=True,
        token="good-access",  # noqa: S106
        external_account_id=FakeX.user_id,
    )
    return tenant, account


async def pending_post_read(h: Any, pending_post_id: str) -> dict[str, Any]:
    """GET /pending-posts/{id} as the HTTP route answers it."""

    class Runtime:
        db = h.db

    handlers = {r.template: r.handler for r in routes(Runtime())}  # type: ignore[arg-type]
    answer = await handlers["/pending-posts/{id}"]({"id": pending_post_id}, {})
    assert answer.status == 200
    return answer.body  # type: ignore[no-any-return]


async def until_reset(retry_at: datetime) -> None:
    await asyncio.sleep(max(0.0, (retry_at - datetime.now(UTC)).total_seconds()) + 0.05)


async def test_x_daily_cap_defers_until_its_reset_then_publishes_once(
    db: Database, harness_with: Any, fake_x: Any
) -> None:
    fake, base_url = fake_x
    h = x_harness(harness_with, base_url)
    tenant, _ = await x_tenant(h)
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["TWITTER", "BLUESKY"])
    await h.deliver(post, "post", "debit")
    fake.fail_next(Fault(429, daily_cap(2)))

    assert await h.publish() == 1
    assert fake.creates() == 1  # no retry after 0.3 s and 0.5 s: the cap is hours (here: seconds) away
    (deferred,) = await h.events("PostPublishDeferred", "t.publisher.events")
    data = deferred["data"]
    assert (data["platform"], data["reason"], data["pending_post_id"]) == (
        "TWITTER",
        "DAILY_CAP",
        post["pending_post_id"],
    )
    retry_at = rfc3339(data["retry_at"])
    row = await db.pool.fetchrow(
        "SELECT status, lease_until FROM pending_posts WHERE id = $1", uuid.UUID(post["pending_post_id"])
    )
    assert (row["status"], row["lease_until"]) == ("PUBLISHING", retry_at)
    attempt = await db.pool.fetchrow(
        "SELECT status, retry_at, deferral_reason FROM publish_attempts WHERE platform = 'TWITTER'"
    )
    # The 429 created nothing: back to QUEUED, so the retry posts without asking X first.
    assert (attempt["status"], attempt["retry_at"], attempt["deferral_reason"]) == ("QUEUED", retry_at, "DAILY_CAP")
    # Bluesky went out in the same round: told at once, not when X is done.
    assert [e["data"]["platform"] for e in await h.events("PostPublished", "t.publisher.events")] == ["BLUESKY"]
    assert await h.events("ScheduleRunCompleted") == [] and await h.events("PostPublishFailed") == []
    shown = await pending_post_read(h, post["pending_post_id"])
    results = {r["platform"]: r for r in shown["platform_results"]}
    assert (results["TWITTER"]["status"], results["TWITTER"]["deferral_reason"]) == ("PENDING", "DAILY_CAP")
    assert rfc3339(results["TWITTER"]["retry_at"]) == retry_at
    assert results["BLUESKY"]["status"] == "PUBLISHED" and results["BLUESKY"]["retry_at"] is None

    assert await h.publish() == 0  # nobody takes it before its retry_at
    assert fake.creates() == 1

    await until_reset(retry_at)
    assert await h.publish() == 1
    assert len(fake.posts) == 1 and fake.creates() == 2
    assert not any(method == "GET" and path.endswith("/tweets") for method, path in fake.calls)  # no lookup
    published = await h.events("PostPublished", "t.publisher.events")
    assert sorted(e["data"]["platform"] for e in published) == ["BLUESKY", "TWITTER"]
    assert h.adapters["BLUESKY"].calls == 1  # type: ignore[attr-defined]  # not called again
    (completed,) = await h.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "PUBLISHED"
    assert await db.pool.fetchval("SELECT count(*) FROM posts") == 2


async def test_a_429_resetting_past_the_call_deadline_defers_instead_of_failing(
    db: Database, harness_with: Any, fake_x: Any
) -> None:
    fake, base_url = fake_x
    h = x_harness(harness_with, base_url)
    tenant, _ = await x_tenant(h)
    post = tenant.post_events(platforms=["TWITTER"])
    await h.deliver(post, "post", "debit")
    fake.fail_next(Fault(429, {"retry-after": "600"}))  # past the old 120 s deadline

    before = datetime.now(UTC)
    assert await h.publish() == 1
    (deferred,) = await h.events("PostPublishDeferred", "t.publisher.events")
    assert deferred["data"]["reason"] == "RATE_LIMITED"
    wait = (rfc3339(deferred["data"]["retry_at"]) - before).total_seconds()
    assert 595 <= wait <= 660
    assert await h.events("PostPublishFailed") == [] and await h.events("ScheduleRunCompleted") == []
    assert fake.creates() == 1


async def test_a_deferral_past_the_longest_one_fails_retries_exhausted_and_ends_the_run(
    db: Database,
    harness_with: Any,
    fake_x: Any,
) -> None:
    fake, base_url = fake_x
    h = x_harness(harness_with, base_url, max_deferral_s=3600)
    tenant, _ = await x_tenant(h)
    post = tenant.post_events(platforms=["TWITTER"])
    await h.deliver(post, "post", "debit")
    fake.fail_next(Fault(429, daily_cap(3 * 3600)))

    assert await h.publish() == 1
    assert await h.events("PostPublishDeferred") == []
    (failed,) = await h.events("PostPublishFailed", "t.publisher.events")
    assert (failed["data"]["platform"], failed["data"]["reason"]) == ("TWITTER", "RETRIES_EXHAUSTED")
    assert "DAILY_CAP" in failed["data"]["detail"] and "longest deferral (1 h" in failed["data"]["detail"]
    # PostPublishFailed is what billing refunds the platform's share on; the run ends.
    (completed,) = await h.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "PUBLISH_FAILED"
    status = await db.pool.fetchval(
        "SELECT status FROM pending_posts WHERE id = $1", uuid.UUID(post["pending_post_id"])
    )
    assert status == "PUBLISH_FAILED"


async def test_a_block_learned_by_one_loop_is_honoured_by_another(db: Database, harness_with: Any, fake_x: Any) -> None:
    fake, base_url = fake_x
    first, second = (
        x_harness(harness_with, base_url),
        x_harness(harness_with, base_url),
    )  # two replicas: own adapters, own limiters
    tenant, account = await x_tenant(first)
    one, two = tenant.post_events(platforms=["TWITTER"]), tenant.post_events(platforms=["TWITTER"])
    await first.deliver(one, "post", "debit")
    fake.fail_next(Fault(429, daily_cap(3600)))
    assert await first.publish() == 1
    row = await db.pool.fetchrow(
        "SELECT blocked_until, block_reason FROM account_rate_limits WHERE social_account_id = $1", uuid.UUID(account)
    )
    assert row["block_reason"] == "DAILY_CAP"

    await second.deliver(two, "post", "debit")
    assert await second.publish() == 1
    assert fake.creates() == 1  # the second replica never called X for this account
    deferred = {e["data"]["pending_post_id"]: e["data"] for e in await second.events("PostPublishDeferred")}
    assert set(deferred) == {one["pending_post_id"], two["pending_post_id"]}
    assert deferred[two["pending_post_id"]]["reason"] == "DAILY_CAP"
    assert rfc3339(deferred[two["pending_post_id"]]["retry_at"]) == row["blocked_until"]


async def test_two_loops_take_an_accounts_turns_one_after_the_other(
    db: Database, harness_with: Any, fake_x: Any
) -> None:
    _, base_url = fake_x
    first, second = x_harness(harness_with, base_url), x_harness(harness_with, base_url)
    _, account = await x_tenant(first)
    account_id = uuid.UUID(account)
    async with db.transaction() as conn:
        turns = await first.loop.deps.account_limits.reserve_turns(conn, {account_id: 2}, min_interval_s=30)
    async with db.transaction() as conn:
        later = await second.loop.deps.account_limits.reserve_turns(conn, {account_id: 1}, min_interval_s=30)
    assert turns[account_id].first_turn_in_s < 1 and turns[account_id].block is None
    assert 58 <= later[account_id].first_turn_in_s <= 60  # after the two turns the first loop reserved


class CappedTimelineX(FakeX):
    """X whose timeline read answers 429 with the user's daily cap used up, `capped` times."""

    capped = 1
    reset_in_s = 2.0

    async def route(self, request: Request) -> Any:
        if request.path == f"/2/users/{self.user_id}/tweets" and self.capped:
            self.capped -= 1
            return 429, daily_cap(self.reset_in_s), {"title": "Too Many Requests"}
        return await super().route(request)


async def test_the_retry_after_a_deferral_finds_the_post_an_unanswered_call_made(
    db: Database, harness_with: Any
) -> None:
    fake = CappedTimelineX()
    async with serve(fake) as base_url:
        h = x_harness(harness_with, base_url)
        tenant, _ = await x_tenant(h)
        post = tenant.post_events(platforms=["TWITTER"])
        await h.deliver(post, "post", "debit")
        # The create goes through but its answer never comes; asking whether it exists is
        # then refused for the daily cap: deferred, with the post live on X.
        fake.fail_next(Fault(delay_s=0.6, create=True))
        assert await h.publish() == 1
        (deferred,) = await h.events("PostPublishDeferred")
        assert len(fake.posts) == 1

        await until_reset(rfc3339(deferred["data"]["retry_at"]))
        assert await h.publish() == 1
        assert len(fake.posts) == 1 and fake.creates() == 1  # found, not posted again
        (published,) = await h.events("PostPublished", "t.publisher.events")
        assert published["data"]["external_id"] == fake.posts[0]["id"]
