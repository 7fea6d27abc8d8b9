"""Billing and run deadlines (issue 19): a run past its deadline before its debit is never
debited and ends TIMED_OUT here, once; one debited already is refunded whole when the publisher
ends it TIMED_OUT, whichever of its per-platform failures came first; and a run the publisher's
last resort ended PUBLISH_FAILED with its outcome alone gets every platform's share back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_billing.adapters.ledger import balance_of, verify_all
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER, SCHEDULER

pytestmark = pytest.mark.integration


def _deadline(org: Any, post: Any) -> Any:
    return org.event("RunDeadlinePassed", run_id=post.data["run_id"])


async def _balance(db: Database, org: Any) -> int:
    return (await balance_of(db.pool, uuid.UUID(org.id))).total  # type: ignore[arg-type]


def _of_run(events: list[dict[str, Any]], post: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["data"]["run_id"] == post.data["run_id"]]


async def test_a_run_past_its_deadline_before_its_debit_is_never_debited(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN"])
    assert await consumer.handle_record(as_record(_deadline(org, post), topic=SCHEDULER)) == "handled"
    assert await consumer.handle_record(as_record(post, topic=CONTENT)) == "handled"
    again = org.post(["TWITTER", "LINKEDIN"], post.data["pending_post_id"])  # a new event id: decided once
    again.data["run_id"] = post.data["run_id"]
    assert await consumer.handle_record(as_record(again, topic=CONTENT)) == "handled"
    [rejected] = _of_run(await books.outbox("CreditsDebitRejected"), post)
    assert rejected["data"]["reason"] == "TIMED_OUT"
    assert [e["data"]["outcome"] for e in _of_run(await books.outbox("ScheduleRunCompleted"), post)] == ["TIMED_OUT"]
    assert _of_run(await books.outbox("CreditsDebited"), post) == []
    assert await _balance(db, org) == 10
    # Its own outcome coming back on analytics.events refunds nothing (nothing was taken).
    assert await consumer.handle_record(as_record(org.run_ended(post, "TIMED_OUT"), topic=ANALYTICS)) == "handled"
    assert await _balance(db, org) == 10 and await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_draft_past_its_own_deadline_is_not_debited_unless_a_reviewer_holds_it(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    late = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    auto, manual = org.post(["TWITTER"]), org.post(["TWITTER"])
    auto.data["deadline"] = late
    manual.data.update(deadline=late, requires_approval=True)
    for post in (auto, manual):
        assert await consumer.handle_record(as_record(post, topic=CONTENT)) == "handled"
    [rejected] = await books.outbox("CreditsDebitRejected")
    assert (rejected["data"]["run_id"], rejected["data"]["reason"]) == (auto.data["run_id"], "TIMED_OUT")
    [debited] = await books.outbox("CreditsDebited")
    assert debited["data"]["run_id"] == manual.data["run_id"]  # the reviewer's wait moves its deadline
    assert await _balance(db, org) == 8


@pytest.mark.parametrize("failures_first", [True, False])
async def test_a_debited_run_ended_timed_out_is_refunded_whole_once(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any, failures_first: bool
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))  # 3 credits
    # Debited already: the deadline is the publisher's to act on, billing only remembers it.
    assert await consumer.handle_record(as_record(_deadline(org, post), topic=SCHEDULER)) == "handled"
    assert await _balance(db, org) == 7
    failures = [org.failed(post, p) for p in ("TWITTER", "LINKEDIN")]
    for f in failures:
        f.data["reason"] = "TIMED_OUT"
    ended = org.run_ended(post, "TIMED_OUT")
    inputs = [*[(f, PUBLISHER) for f in failures], (ended, ANALYTICS)]
    for event, topic in inputs if failures_first else reversed(inputs):
        assert await consumer.handle_record(as_record(event, topic=topic)) == "handled"
    assert await _balance(db, org) == 10
    refunds = _of_run(await books.outbox("CreditsRefunded"), post)
    assert sum(e["data"]["amount"] for e in refunds) == 3
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_run_ended_publish_failed_by_its_outcome_alone_refunds_every_platform(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    """The publisher's last resort writes no PostPublishFailed, only the run's outcome."""
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN", "MASTODON"])
    await consumer.handle_record(as_record(post, topic=CONTENT))  # GENERATE 1 + PUBLISH 2 (3 platforms)
    assert await _balance(db, org) == 7
    assert await consumer.handle_record(as_record(org.run_ended(post, "PUBLISH_FAILED"), topic=ANALYTICS)) == "handled"
    after_outcome = await _balance(db, org)
    # A failure arriving later (had it been written) refunds nothing more.
    assert await consumer.handle_record(as_record(org.failed(post, "TWITTER"), topic=PUBLISHER)) == "handled"
    assert await _balance(db, org) == after_outcome == 9  # the publishing share back, as failures would
    refunds = _of_run(await books.outbox("CreditsRefunded"), post)
    assert {e["data"]["reason"] for e in refunds} == {"PUBLISH_FAILED"} and sum(
        e["data"]["amount"] for e in refunds
    ) == 2
