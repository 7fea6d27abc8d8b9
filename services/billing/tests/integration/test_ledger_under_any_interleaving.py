"""The ledger under any order of events, on the real database: generated interleavings of grants,
periods, debits, failures and rejections, in consumer batches delivered twice, keep the balance
equal to the ledger and apply each key once; a batch of debits decides exactly as one at a time.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hopcast_billing.adapters.ledger import balance_of, verify_all
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record
from hopcast_shared.topics import CONTENT

pytestmark = pytest.mark.integration


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 8), st.integers(0, 3)),
        st.tuples(st.just("period"), st.integers(1, 12), st.integers(0, 3)),
        st.tuples(st.just("debit"), st.integers(1, 4), st.integers(0, 5)),
        st.tuples(st.just("fail"), st.sampled_from(["TWITTER", "LINKEDIN", "BLUESKY", "THREADS"]), st.integers(0, 5)),
        st.tuples(st.just("reject"), st.just(0), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=25,
)
PLATFORMS = ["TWITTER", "LINKEDIN", "BLUESKY", "THREADS"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, batch=st.integers(1, 8))
async def test_any_interleaving_keeps_balance_equal_to_ledger_and_applies_each_key_once(
    db: Database, consumer: EventConsumer, ops: list[tuple[str, Any, int]], batch: int, books: Any, new_org: Any
) -> None:
    """Events come in consumer batches of `batch` (1: one transaction each), each batch twice."""
    org = new_org()
    start = datetime(2027, 1, 1, tzinfo=UTC)
    grants = [str(uuid.uuid4()) for _ in range(4)]
    posts = [org.post(PLATFORMS[: 1 + i % 4]) for i in range(6)]
    granted: set[str] = set()
    events: list[Any] = []
    for op, value, slot in ops:
        if op == "grant":
            event = org.grant(value, grants[slot])
            granted.add(grants[slot])
        elif op == "period":
            event = org.period(value * 10, start + timedelta(days=30 * slot))
        elif op == "debit":
            event = posts[slot]
        elif op == "fail":
            post = posts[slot]
            event = org.failed(post, value)
        else:
            event = org.run_ended(posts[slot], "REJECTED")
        events.append(event)
    for start_at in range(0, len(events), batch):
        # Every batch is delivered twice: the second changes nothing.
        for _ in range(2):
            await consumer.handle_batch([as_record(e) for e in events[start_at : start_at + batch]])
    org_id = uuid.UUID(org.id)
    balance = await balance_of(db.pool, org_id)  # type: ignore[arg-type]
    assert balance.period >= 0 and balance.topup >= 0
    assert balance.total == await books.ledger_sum(org.id)
    keys = await db.pool.fetch("SELECT idempotency_key FROM ledger WHERE organization_id = $1", org_id)
    assert len({k["idempotency_key"] for k in keys}) == len(keys)
    topups = await db.pool.fetchval(
        "SELECT count(*) FROM ledger WHERE organization_id = $1 AND action = 'TOPUP'", org_id
    )
    assert topups == len(granted)
    debits = await db.pool.fetch("SELECT * FROM debits WHERE organization_id = $1", org_id)
    for d in debits:  # refunds never exceed what was taken
        assert d["refunded_period"] + d["refunded_topup"] <= d["from_period"] + d["from_topup"]


async def test_a_batch_of_debits_decides_exactly_as_one_at_a_time(
    db: Database, consumer: EventConsumer, books: Any, new_org: Any
) -> None:
    """The same posts for two organizations with the same credits: one by one for the first,
    in one batch for the second (with a redelivered post and a second event for a post in it).
    The ledgers, balances and emitted events must be the same."""
    orgs = [new_org(), new_org()]
    start = datetime(2027, 1, 1, tzinfo=UTC)
    plans = [["TWITTER"], ["TWITTER", "LINKEDIN", "BLUESKY"], ["LINKEDIN"], ["TWITTER", "LINKEDIN"]] * 3
    posts: list[list[Any]] = [[], []]
    for org, own in zip(orgs, posts, strict=True):
        await consumer.handle_record(as_record(org.period(4, start)))
        await consumer.handle_record(as_record(org.grant(5)))
        own.extend(org.post(platforms) for platforms in plans)
    for post in posts[0]:
        await consumer.handle_record(as_record(post, topic=CONTENT))
    second = posts[1]
    again = orgs[1].post(["TWITTER"], pending_post_id=second[0].data["pending_post_id"])
    outcomes = await consumer.handle_batch(
        [as_record(p, topic=CONTENT) for p in second]
        + [as_record(second[1], topic=CONTENT), as_record(again, topic=CONTENT)]
    )
    assert outcomes == ["handled"] * len(second) + ["duplicate", "handled"]

    async def ledger_of(org: Any) -> list[tuple[Any, ...]]:
        rows = await db.pool.fetch(
            "SELECT action, period_amount, topup_amount, balance_after FROM ledger"
            " WHERE organization_id = $1 ORDER BY id",
            uuid.UUID(org.id),
        )
        return [tuple(r) for r in rows]

    async def events_of(org: Any) -> list[tuple[Any, ...]]:
        rows = await db.pool.fetch("SELECT event_type, payload FROM outbox WHERE key = $1 ORDER BY id", org.id.encode())
        out = []
        for r in rows:
            data = json.loads(r["payload"])["data"]
            out.append((r["event_type"], data.get("amount"), data.get("balance_after"), data.get("available")))
        return out

    assert await ledger_of(orgs[0]) == await ledger_of(orgs[1])
    assert await events_of(orgs[0]) == await events_of(orgs[1])
    debited = [e for e in await events_of(orgs[1]) if e[0] == "CreditsDebited"]
    rejected = [e for e in await events_of(orgs[1]) if e[0] == "CreditsDebitRejected"]
    # 9 credits: 2, 3, 2; the next (3) does not fit, the one after (2) does.
    assert [e[2] for e in debited] == [7, 4, 2, 0]
    assert len(rejected) == len(plans) - 4 and rejected[0][3] == 2
    for org in orgs:
        assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 0  # type: ignore[arg-type]
        assert await books.ledger_sum(org.id) == 0
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]
