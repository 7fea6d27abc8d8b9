"""Ids another organization also uses, on the real database: a grant, subscription or draft that
reuses another organization's id is the sender's own, and a failure or run end naming another
organization's pending post or run is dead-lettered; the owner's ledger never changes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_billing.adapters.ledger import balance_of, verify_all
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER

pytestmark = pytest.mark.integration


async def test_a_grant_reusing_another_organizations_grant_id_is_its_own_grant(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    """The grant_id is the organization's idempotency key: another organization's grant with
    the same id is granted to it, and changes nothing of the first (it used to vanish as a
    duplicate of the first, with no dead letter)."""
    owner, other = new_org(), new_org()
    grant_id = str(uuid.uuid4())
    assert await consumer.handle_record(as_record(owner.grant(10, grant_id))) == "handled"
    before = await books.ledger_rows(owner.id)
    assert await consumer.handle_record(as_record(other.grant(25, grant_id))) == "handled"
    assert await consumer.handle_record(as_record(other.grant(25, grant_id))) == "handled"  # its own redelivery
    assert (await balance_of(db.pool, uuid.UUID(other.id))).total == 25  # type: ignore[arg-type]
    assert await books.ledger_rows(other.id) == [("TOPUP", f"grant:{grant_id}", 25)]
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 10  # type: ignore[arg-type]
    assert await books.ledger_rows(owner.id) == before
    usage = await books.outbox("CreditsUsage")
    assert sorted((u["organizationid"], u["data"]["amount"]) for u in usage) == sorted([(owner.id, 10), (other.id, 25)])
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_subscription_reusing_another_organizations_subscription_id_is_its_own(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    owner, other = new_org(), new_org()
    subscription_id = str(uuid.uuid4())
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert await consumer.handle_record(as_record(owner.period(300, start, subscription_id))) == "handled"
    assert await consumer.handle_record(as_record(owner.post(["TWITTER"]), topic=CONTENT)) == "handled"
    before = await books.ledger_rows(owner.id)
    # The same subscription id and period start, another organization: its own period.
    assert await consumer.handle_record(as_record(other.period(1000, start, subscription_id))) == "handled"
    assert (await balance_of(db.pool, uuid.UUID(other.id))).total == 1000  # type: ignore[arg-type]
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 298  # type: ignore[arg-type]
    assert await books.ledger_rows(owner.id) == before
    subscriptions = await db.pool.fetch(
        "SELECT organization_id, credits_total FROM subscriptions WHERE subscription_id = $1 ORDER BY credits_total",
        uuid.UUID(subscription_id),
    )
    assert [(str(r["organization_id"]), r["credits_total"]) for r in subscriptions] == [
        (owner.id, 300),
        (other.id, 1000),
    ]
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_draft_reusing_another_organizations_pending_post_id_is_its_own_debit(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    """One debit per pending post of an organization: another organization's draft with the
    same id is debited to it (in a batch too), and its refunds are its own."""
    owner, other = new_org(), new_org()
    await consumer.handle_record(as_record(owner.grant(10)))
    await consumer.handle_record(as_record(other.grant(10)))
    post = owner.post(["TWITTER", "LINKEDIN"])
    assert await consumer.handle_record(as_record(post, topic=CONTENT)) == "handled"
    before = await books.ledger_rows(owner.id)
    theirs = other.post(["TWITTER"], pending_post_id=post.data["pending_post_id"])
    mine = other.post(["TWITTER"])
    outcomes = await consumer.handle_batch([as_record(p, topic=CONTENT) for p in (theirs, mine)])
    assert outcomes == ["handled", "handled"]
    debited = await books.outbox("CreditsDebited")
    assert sorted((d["organizationid"], d["data"]["balance_after"]) for d in debited) == sorted(
        [(owner.id, 7), (other.id, 8), (other.id, 6)]
    )
    # The other organization's platform failure refunds its own debit, never the owner's.
    failed = other.event(
        "PostPublishFailed",
        pending_post_id=post.data["pending_post_id"],
        run_id=theirs.data["run_id"],
        platform="TWITTER",
    )
    assert await consumer.handle_record(as_record(failed, topic=PUBLISHER)) == "handled"
    [refund] = await books.outbox("CreditsRefunded")
    assert (refund["organizationid"], refund["data"]["amount"]) == (other.id, 1)
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 7  # type: ignore[arg-type]
    assert (await balance_of(db.pool, uuid.UUID(other.id))).total == 7  # type: ignore[arg-type]
    assert await books.ledger_rows(owner.id) == before
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_failure_naming_another_organizations_pending_post_is_refused(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    owner, other = new_org(), new_org()
    await consumer.handle_record(as_record(owner.grant(10)))
    post = owner.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    failed = other.failed(post, "TWITTER")
    assert await consumer.handle_record(as_record(failed, topic=PUBLISHER)) == "dead_lettered"
    [letter] = await books.dead_letters()
    assert f"pending post {post.data['pending_post_id']} belongs to another organization" in letter["error"]
    assert await books.outbox("CreditsRefunded") == []
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 7  # type: ignore[arg-type]


async def test_a_debit_naming_another_organizations_post_is_refused(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    owner, intruder = new_org(), new_org()
    await consumer.handle_record(as_record(owner.grant(10)))
    post = owner.post(["TWITTER"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    steal = intruder.run_ended(post, "REJECTED")
    assert await consumer.handle_record(as_record(steal, topic=ANALYTICS)) == "dead_lettered"
    [letter] = await books.dead_letters()
    # It says which id is not the sender's, and nothing of the owner's (its pending post).
    assert f"run {post.data['run_id']} belongs to another organization" in letter["error"]
    assert post.data["pending_post_id"] not in letter["error"]
    assert await books.outbox("CreditsRefunded") == []
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 8  # type: ignore[arg-type]
