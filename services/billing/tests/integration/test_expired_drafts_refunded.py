"""A manual draft that expired undecided (the publisher's PendingPostExpired) gets its whole
debit back, once: not twice on a redelivery or a second event, and not again after a rejection
already gave it back. On the real database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_billing.adapters.ledger import balance_of, verify_all
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record
from hopcast_shared.topics import ANALYTICS, CONTENT, PUBLISHER

pytestmark = pytest.mark.integration


def expired(org: Any, post: Any) -> Any:
    return org.event("PendingPostExpired", pending_post_id=post.data["pending_post_id"], run_id=post.data["run_id"])


async def test_an_expired_draft_is_refunded_whole_once(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN", "BLUESKY"])
    await consumer.handle_record(as_record(post, topic=CONTENT))  # 1 + 2 for three platforms
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]

    record = as_record(expired(org, post), topic=PUBLISHER)
    assert await consumer.handle_record(record) == "handled"
    assert await consumer.handle_record(record) == "duplicate"  # a redelivery
    assert await consumer.handle_record(as_record(expired(org, post), topic=PUBLISHER)) == "handled"  # another event
    refunds = [r["data"] for r in await books.outbox("CreditsRefunded")]
    assert [(r["amount"], r["balance_after"], r["reason"]) for r in refunds] == [(3, 10, "PENDING_POST_EXPIRED")]
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 10  # type: ignore[arg-type]
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]
    assert await books.dead_letters() == []


async def test_a_draft_given_back_on_rejection_is_not_refunded_again_on_expiry(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    org = new_org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    await consumer.handle_record(as_record(org.run_ended(post, "REJECTED"), topic=ANALYTICS))
    await consumer.handle_record(as_record(expired(org, post), topic=PUBLISHER))
    refunds = [r["data"] for r in await books.outbox("CreditsRefunded")]
    assert [r["reason"] for r in refunds] == ["PENDING_POST_REJECTED"]
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 10  # type: ignore[arg-type]
