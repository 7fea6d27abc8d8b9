"""Debits, refunds and grants on the real database, through the service's own consumer path: a
debit never overdraws nor happens twice for a pending post, a platform failure or a rejected run
refunds once and never more than was taken, subscription periods do not roll over and top-ups
are spent last; an internal event forged on upstream.events is dead-lettered. (The harness is in
conftest.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_billing.adapters.ledger import balance_of, verify_all
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER, UPSTREAM

pytestmark = pytest.mark.integration


async def test_64_concurrent_debits_for_one_organization_never_overdraw(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    assert await consumer.handle_record(as_record(org.grant(100))) == "handled"
    posts = [org.post(["TWITTER"]) for _ in range(64)]  # 2 credits each: 128 wanted, 100 there
    outcomes = await asyncio.gather(*(consumer.handle_record(as_record(p, topic=CONTENT)) for p in posts))
    assert outcomes == ["handled"] * 64
    debited = await books.outbox("CreditsDebited")
    rejected = await books.outbox("CreditsDebitRejected")
    assert len(debited) == 50 and len(rejected) == 14
    assert sorted(e["data"]["balance_after"] for e in debited) == list(range(0, 100, 2))
    assert {e["data"]["reason"] for e in rejected} == {"INSUFFICIENT_CREDITS"}
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 0  # type: ignore[arg-type]
    assert await books.ledger_sum(org.id) == 0
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_second_event_for_the_same_pending_post_never_debits_twice(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    pending = str(uuid.uuid4())
    first = org.post(["TWITTER", "LINKEDIN"], pending)
    assert await consumer.handle_record(as_record(first, topic=CONTENT)) == "handled"
    assert await consumer.handle_record(as_record(first, topic=CONTENT)) == "duplicate"  # redelivery
    again = org.post(["TWITTER", "LINKEDIN"], pending)  # a new event id, same pending post
    assert await consumer.handle_record(as_record(again, topic=CONTENT)) == "handled"
    assert len(await books.outbox("CreditsDebited")) == 1
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]


async def test_a_platform_failure_refunds_its_share_once_and_a_rejection_the_rest(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))  # 3 credits
    pending = post.data["pending_post_id"]
    for _ in range(2):  # two events for the same failure: one refund
        failed = org.event("PostPublishFailed", pending_post_id=pending, run_id=post.data["run_id"], platform="TWITTER")
        await consumer.handle_record(as_record(failed, topic=PUBLISHER))
    refunds = await books.outbox("CreditsRefunded")
    assert [(r["data"]["amount"], r["data"]["balance_after"], r["data"]["reason"]) for r in refunds] == [
        (1, 8, "PUBLISH_FAILED")
    ]
    # The publisher ended the run REJECTED (after the debit, as it always does); said twice.
    await consumer.handle_record(as_record(org.run_ended(post, "REJECTED"), topic=ANALYTICS))
    await consumer.handle_record(as_record(org.run_ended(post, "REJECTED"), topic=ANALYTICS))
    refunds = await books.outbox("CreditsRefunded")
    assert [r["data"]["amount"] for r in refunds] == [1, 2]  # never more than was debited
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 10  # type: ignore[arg-type]
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_only_a_run_the_publisher_ended_rejected_is_refunded(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    """PendingPostRejected itself refunds nothing: a rejection read after publishing started
    changes nothing at the publisher (the post is out), so it is not refunded either. The
    publisher's ScheduleRunCompleted REJECTED is what refunds, and only that outcome."""
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    published, rejected = org.post(["TWITTER", "LINKEDIN"]), org.post(["TWITTER"])
    assert await consumer.handle_batch([as_record(p, topic=CONTENT) for p in (published, rejected)]) == [
        "handled",
        "handled",
    ]
    late = org.event("PendingPostRejected", pending_post_id=published.data["pending_post_id"])
    assert await consumer.handle_record(as_record(late)) == "ignored"
    for event in (org.run_ended(published, "PUBLISHED"), org.run_ended(rejected, "REJECTED")):
        assert await consumer.handle_record(as_record(event, topic=ANALYTICS)) == "handled"
    refunds = await books.outbox("CreditsRefunded")
    assert [(r["data"]["pending_post_id"], r["data"]["amount"], r["data"]["reason"]) for r in refunds] == [
        (rejected.data["pending_post_id"], 2, "PENDING_POST_REJECTED")
    ]
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_an_internal_event_forged_on_upstream_events_is_dead_lettered(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    forged = org.failed(post, "TWITTER")
    # Only the publisher says a platform failed (publisher.events); on upstream.events it is a forgery.
    assert await consumer.handle_record(as_record(forged, topic=UPSTREAM)) == "dead_lettered"
    assert await consumer.handle_record(as_record(post, topic=UPSTREAM)) == "dead_lettered"
    assert await books.outbox("CreditsRefunded") == []
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]


async def test_subscription_periods_do_not_roll_over_and_top_ups_are_spent_last(
    db: Database, consumer: EventConsumer, new_org: Any
) -> None:
    org = new_org()
    start = datetime(2027, 1, 1, tzinfo=UTC)
    await consumer.handle_record(as_record(org.period(3, start)))
    await consumer.handle_record(as_record(org.grant(5)))
    await consumer.handle_record(as_record(org.post(["TWITTER"]), topic=CONTENT))  # 2 from the period
    balance = await balance_of(db.pool, uuid.UUID(org.id))  # type: ignore[arg-type]
    assert (balance.period, balance.topup) == (1, 5)
    await consumer.handle_record(as_record(org.post(["TWITTER"]), topic=CONTENT))  # 1 period + 1 top-up
    balance = await balance_of(db.pool, uuid.UUID(org.id))  # type: ignore[arg-type]
    assert (balance.period, balance.topup) == (0, 4)
    await consumer.handle_record(as_record(org.period(300, start + timedelta(days=30))))
    await consumer.handle_record(as_record(org.period(300, start + timedelta(days=30))))  # same period again
    await consumer.handle_record(as_record(org.period(3, start)))  # an old period comes late
    balance = await balance_of(db.pool, uuid.UUID(org.id))  # type: ignore[arg-type]
    assert (balance.period, balance.topup) == (300, 4)
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_no_subscription_and_no_credits_is_rejected_as_such(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    post = org.post(["TWITTER"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    (rejected,) = await books.outbox("CreditsDebitRejected")
    assert rejected["data"]["reason"] == "NO_SUBSCRIPTION"
    assert (rejected["data"]["requested"], rejected["data"]["available"]) == (2, 0)
    (completed,) = await books.outbox("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "INSUFFICIENT_CREDITS"
    assert completed["data"]["run_id"] == post.data["run_id"]
    assert completed["data"]["due_at"] == post.data["due_at"]
