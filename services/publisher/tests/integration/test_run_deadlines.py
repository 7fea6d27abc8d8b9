"""A run past its deadline in the publisher (issue 19): ended TIMED_OUT before any platform call,
whichever order RunDeadlinePassed, the draft and its debit come in; a call already started is
finished; exactly one ScheduleRunCompleted; and the last resort (`abandon_pending_post`) ends
its run with its outcome."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hopcast_publisher.adapters.pending_posts import PendingPostRepository
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.config import PublisherSettings
from hopcast_shared.contract import Platform
from hopcast_shared.db import Database

pytestmark = pytest.mark.integration

SCHEDULER_EVENTS = "scheduler.events"


def _deadline_passed(tenant: Any, post: dict[str, Any]) -> Any:
    return tenant.event("RunDeadlinePassed", run_id=post["run_id"], brand_profile_id=tenant.brand)


async def _ended(harness: Any, post: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]], int]:
    """The run's outcomes, its failures (platform, reason) and its posts rows."""
    completed = harness.of_run(await harness.events("ScheduleRunCompleted"), post["run_id"])
    failed = harness.of_run(await harness.events("PostPublishFailed"), post["run_id"])
    posts = await harness.db.pool.fetchval(
        "SELECT count(*) FROM posts WHERE pending_post_id = $1", uuid.UUID(post["pending_post_id"])
    )
    return (
        [e["data"]["outcome"] for e in completed],
        sorted((e["data"]["platform"], e["data"]["reason"]) for e in failed),
        int(posts),
    )


TIMED_OUT_BOTH = [("BLUESKY", "TIMED_OUT"), ("MASTODON", "TIMED_OUT")]


@pytest.mark.parametrize(
    "order",
    [
        ("deadline", "post", "debit"),
        ("post", "deadline", "debit"),
        ("post", "debit", "deadline"),  # publishing started: the loop calls nothing
        ("debit", "deadline", "post"),
    ],
)
async def test_a_run_past_its_deadline_ends_timed_out_before_any_call_in_any_order(
    harness: Any, order: tuple[str, ...]
) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    await tenant.account("MASTODON", default=True)
    post = tenant.post_events(platforms=["BLUESKY", "MASTODON"])
    post["deadline"] = _deadline_passed(tenant, post)
    for name in order:
        if name == "deadline":
            assert await harness.send(post["deadline"], SCHEDULER_EVENTS) == "handled"
        else:
            await harness.deliver(post, name)
    await harness.publish()
    assert await _ended(harness, post) == (["TIMED_OUT"], TIMED_OUT_BOTH, 0)
    # Redelivered (a new id, as a replayed topic would carry) or late: nothing more.
    again = _deadline_passed(tenant, post)
    assert await harness.send(again, SCHEDULER_EVENTS) == "handled"
    await harness.publish()
    assert await _ended(harness, post) == (["TIMED_OUT"], TIMED_OUT_BOTH, 0)
    row = await PendingPostRepository().pending_post(harness.db.pool, uuid.UUID(post["pending_post_id"]))  # type: ignore[arg-type]
    assert row["status"] == "TIMED_OUT" and row["deadline_passed_at"] is not None


async def test_a_deadline_after_the_run_ended_changes_nothing(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 1
    assert await harness.send(_deadline_passed(tenant, post), SCHEDULER_EVENTS) == "handled"
    assert await _ended(harness, post) == (["PUBLISHED"], [], 1)


async def test_a_draft_past_its_own_deadline_is_not_started_without_a_reviewer(harness: Any) -> None:
    """Back from an outage, the publisher may read the draft and its debit before RunDeadlinePassed:
    the draft's own deadline stops it. A reviewer's wait moves the deadline, so a manual draft
    waits for the scheduler's word instead."""
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    late = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    auto = tenant.post_events(platforms=["BLUESKY"])
    auto["post"].data["deadline"] = late
    manual = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    manual["post"].data["deadline"] = late
    await harness.deliver(auto, "post", "debit")
    await harness.deliver(manual, "post", "debit", "approve")
    await harness.publish()
    assert await _ended(harness, auto) == (["TIMED_OUT"], [("BLUESKY", "TIMED_OUT")], 0)
    assert await _ended(harness, manual) == (["PUBLISHED"], [], 1)


async def test_the_last_resort_ends_its_run_with_its_outcome(db: Database, harness_with: Any) -> None:
    """Not even its failures can be written as events (a platform the contract does not know):
    it ends PUBLISH_FAILED with its run's ScheduleRunCompleted alone, on which billing refunds."""
    settings = PublisherSettings(lease_s=300, http_deadline_s=10, completion_max_attempts=2, completion_backoff_s=60)
    harness = harness_with({p.value: SandboxAdapter(p.value) for p in Platform}, settings)
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "post", "debit")
    pending = uuid.UUID(post["pending_post_id"])
    await db.pool.execute("UPDATE publish_attempts SET platform = 'NOPE' WHERE pending_post_id = $1", pending)
    await db.pool.execute("UPDATE pending_posts SET platforms = '{NOPE}' WHERE id = $1", pending)

    def abandoned() -> float:
        return REGISTRY.get_sample_value("hopcast_publisher_completion_failures_total", {"result": "abandoned"}) or 0

    before = abandoned()
    assert await harness.publish() == 1  # fails to complete: retried later
    await db.pool.execute("UPDATE pending_posts SET lease_until = now() WHERE id = $1", pending)
    assert await harness.publish() == 1  # the last attempt: given up, then abandoned
    assert abandoned() - before == 1
    row = await PendingPostRepository().pending_post(db.pool, pending)  # type: ignore[arg-type]
    assert row["status"] == "PUBLISH_FAILED" and "ending it failed too" in row["completion_error"]
    assert await _ended(harness, post) == (["PUBLISH_FAILED"], [], 0)
    [completed] = harness.of_run(await harness.events("ScheduleRunCompleted"), post["run_id"])
    assert completed["correlationid"] == post["run_id"] and completed["data"]["brand_profile_id"] == tenant.brand


async def test_another_organizations_deadline_for_a_run_is_refused(harness: Any) -> None:
    owner, other = await harness.tenant(), await harness.tenant()
    await owner.account("BLUESKY", default=True)
    post = owner.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "post")
    forged = other.event("RunDeadlinePassed", run_id=post["run_id"], brand_profile_id=other.brand)
    assert await harness.send(forged, SCHEDULER_EVENTS) == "dead_lettered"
    await harness.deliver(post, "debit")
    assert await harness.publish() == 1
    assert await _ended(harness, post) == (["PUBLISHED"], [], 1)
