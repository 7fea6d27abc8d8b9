"""The ledger on the real database (through the service's own consumer path) and through Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from hopcast_billing.adapters.ledger import balance_of, verify_all
from hopcast_billing.bootstrap import MIGRATIONS, definition
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, eventually, read_events, send_event
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER, UPSTREAM

pytestmark = pytest.mark.integration


def _settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(
        name="billing",
        database_url=database_url,
        http_port=18083,
        handler_backoff_initial_s=0.01,
        handler_max_attempts=10,
        outbox_poll_interval_s=0.2,
        db_pool_max=20,
    )


class Org:
    def __init__(self) -> None:
        self.id = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.id, **changes)

    def post(self, platforms: list[str], pending_post_id: str | None = None) -> Any:
        return self.event(
            "PendingPostCreated",
            pending_post_id=pending_post_id or str(uuid.uuid4()),
            run_id=str(uuid.uuid4()),
            platforms=platforms,
        )

    def run_ended(self, post: Any, outcome: str) -> Any:
        """The publisher's ScheduleRunCompleted for the run of a pending post."""
        return self.event("ScheduleRunCompleted", run_id=post.data["run_id"], outcome=outcome)

    def grant(self, amount: int, grant_id: str | None = None) -> Any:
        return self.event("CreditsGranted", grant_id=grant_id or str(uuid.uuid4()), amount=amount)

    def period(self, credits: int, start: datetime, subscription_id: str | None = None) -> Any:
        return self.event(
            "SubscriptionActivated",
            subscription_id=subscription_id or str(uuid.UUID(int=uuid.UUID(self.id).int ^ 1)),
            plan="STARTER",
            credits_total=credits,
            period_start=start.isoformat(),
            period_end=(start + timedelta(days=30)).isoformat(),
        )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("billing", MIGRATIONS), max_size=70)
    yield database
    await database.close()


@pytest.fixture
def consumer(db: Database, database_url: str, stack: Any) -> EventConsumer:
    d = definition()
    return EventConsumer("billing", db, d.handlers, kafka=stack.kafka_settings, settings=_settings(database_url))


async def _ledger_sum(db: Database, org: str) -> int:
    return int(
        await db.pool.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger WHERE organization_id = $1", uuid.UUID(org))
    )


async def _outbox(db: Database, event_type: str) -> list[dict[str, Any]]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [json.loads(r["payload"]) for r in rows]


async def test_64_concurrent_debits_for_one_organization_never_overdraw(db: Database, consumer: EventConsumer) -> None:
    org = Org()
    assert await consumer.handle_record(as_record(org.grant(100))) == "handled"
    posts = [org.post(["TWITTER"]) for _ in range(64)]  # 2 credits each: 128 wanted, 100 there
    outcomes = await asyncio.gather(*(consumer.handle_record(as_record(p, topic=CONTENT)) for p in posts))
    assert outcomes == ["handled"] * 64
    debited = await _outbox(db, "CreditsDebited")
    rejected = await _outbox(db, "CreditsDebitRejected")
    assert len(debited) == 50 and len(rejected) == 14
    assert sorted(e["data"]["balance_after"] for e in debited) == list(range(0, 100, 2))
    assert {e["data"]["reason"] for e in rejected} == {"INSUFFICIENT_CREDITS"}
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 0  # type: ignore[arg-type]
    assert await _ledger_sum(db, org.id) == 0
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_second_event_for_the_same_pending_post_never_debits_twice(
    db: Database, consumer: EventConsumer
) -> None:
    org = Org()
    await consumer.handle_record(as_record(org.grant(10)))
    pending = str(uuid.uuid4())
    first = org.post(["TWITTER", "LINKEDIN"], pending)
    assert await consumer.handle_record(as_record(first, topic=CONTENT)) == "handled"
    assert await consumer.handle_record(as_record(first, topic=CONTENT)) == "duplicate"  # redelivery
    again = org.post(["TWITTER", "LINKEDIN"], pending)  # a new event id, same pending post
    assert await consumer.handle_record(as_record(again, topic=CONTENT)) == "handled"
    assert len(await _outbox(db, "CreditsDebited")) == 1
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]


async def test_a_platform_failure_refunds_its_share_once_and_a_rejection_the_rest(
    db: Database, consumer: EventConsumer
) -> None:
    org = Org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))  # 3 credits
    pending = post.data["pending_post_id"]
    for _ in range(2):  # two events for the same failure: one refund
        failed = org.event("PostPublishFailed", pending_post_id=pending, run_id=post.data["run_id"], platform="TWITTER")
        await consumer.handle_record(as_record(failed, topic=PUBLISHER))
    refunds = await _outbox(db, "CreditsRefunded")
    assert [(r["data"]["amount"], r["data"]["balance_after"], r["data"]["reason"]) for r in refunds] == [
        (1, 8, "PUBLISH_FAILED")
    ]
    # The publisher ended the run REJECTED (after the debit, as it always does); said twice.
    await consumer.handle_record(as_record(org.run_ended(post, "REJECTED"), topic=ANALYTICS))
    await consumer.handle_record(as_record(org.run_ended(post, "REJECTED"), topic=ANALYTICS))
    refunds = await _outbox(db, "CreditsRefunded")
    assert [r["data"]["amount"] for r in refunds] == [1, 2]  # never more than was debited
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 10  # type: ignore[arg-type]
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_only_a_run_the_publisher_ended_rejected_is_refunded(db: Database, consumer: EventConsumer) -> None:
    """PendingPostRejected itself refunds nothing: a rejection read after publishing started
    changes nothing at the publisher (the post is out), so it is not refunded either. The
    publisher's ScheduleRunCompleted REJECTED is what refunds, and only that outcome."""
    org = Org()
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
    refunds = await _outbox(db, "CreditsRefunded")
    assert [(r["data"]["pending_post_id"], r["data"]["amount"], r["data"]["reason"]) for r in refunds] == [
        (rejected.data["pending_post_id"], 2, "PENDING_POST_REJECTED")
    ]
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_an_internal_event_forged_on_upstream_events_is_dead_lettered(
    db: Database, consumer: EventConsumer
) -> None:
    org = Org()
    await consumer.handle_record(as_record(org.grant(10)))
    post = org.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    forged = org.event(
        "PostPublishFailed",
        pending_post_id=post.data["pending_post_id"],
        run_id=post.data["run_id"],
        platform="TWITTER",
    )
    # Only the publisher says a platform failed (publisher.events); on upstream.events it is a forgery.
    assert await consumer.handle_record(as_record(forged, topic=UPSTREAM)) == "dead_lettered"
    assert await consumer.handle_record(as_record(post, topic=UPSTREAM)) == "dead_lettered"
    assert await _outbox(db, "CreditsRefunded") == []
    assert (await balance_of(db.pool, uuid.UUID(org.id))).total == 7  # type: ignore[arg-type]


async def _dead_letters(db: Database) -> list[dict[str, Any]]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE topic LIKE '%.dlq' ORDER BY id")
    return [json.loads(r["payload"]) for r in rows]


async def _ledger_rows(db: Database, org: str) -> list[tuple[str, str, int]]:
    rows = await db.pool.fetch(
        "SELECT action, idempotency_key, amount FROM ledger WHERE organization_id = $1 ORDER BY id", uuid.UUID(org)
    )
    return [(r["action"], r["idempotency_key"], r["amount"]) for r in rows]


async def test_a_grant_reusing_another_organizations_grant_id_is_its_own_grant(
    db: Database, consumer: EventConsumer
) -> None:
    """The grant_id is the organization's idempotency key: another organization's grant with
    the same id is granted to it, and changes nothing of the first (it used to vanish as a
    duplicate of the first, with no dead letter)."""
    owner, other = Org(), Org()
    grant_id = str(uuid.uuid4())
    assert await consumer.handle_record(as_record(owner.grant(10, grant_id))) == "handled"
    before = await _ledger_rows(db, owner.id)
    assert await consumer.handle_record(as_record(other.grant(25, grant_id))) == "handled"
    assert await consumer.handle_record(as_record(other.grant(25, grant_id))) == "handled"  # its own redelivery
    assert (await balance_of(db.pool, uuid.UUID(other.id))).total == 25  # type: ignore[arg-type]
    assert await _ledger_rows(db, other.id) == [("TOPUP", f"grant:{grant_id}", 25)]
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 10  # type: ignore[arg-type]
    assert await _ledger_rows(db, owner.id) == before
    usage = await _outbox(db, "CreditsUsage")
    assert sorted((u["organizationid"], u["data"]["amount"]) for u in usage) == sorted([(owner.id, 10), (other.id, 25)])
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_subscription_reusing_another_organizations_subscription_id_is_its_own(
    db: Database, consumer: EventConsumer
) -> None:
    owner, other = Org(), Org()
    subscription_id = str(uuid.uuid4())
    start = datetime(2027, 1, 1, tzinfo=UTC)
    assert await consumer.handle_record(as_record(owner.period(300, start, subscription_id))) == "handled"
    assert await consumer.handle_record(as_record(owner.post(["TWITTER"]), topic=CONTENT)) == "handled"
    before = await _ledger_rows(db, owner.id)
    # The same subscription id and period start, another organization: its own period.
    assert await consumer.handle_record(as_record(other.period(1000, start, subscription_id))) == "handled"
    assert (await balance_of(db.pool, uuid.UUID(other.id))).total == 1000  # type: ignore[arg-type]
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 298  # type: ignore[arg-type]
    assert await _ledger_rows(db, owner.id) == before
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
    db: Database, consumer: EventConsumer
) -> None:
    """One debit per pending post of an organization: another organization's draft with the
    same id is debited to it (in a batch too), and its refunds are its own."""
    owner, other = Org(), Org()
    await consumer.handle_record(as_record(owner.grant(10)))
    await consumer.handle_record(as_record(other.grant(10)))
    post = owner.post(["TWITTER", "LINKEDIN"])
    assert await consumer.handle_record(as_record(post, topic=CONTENT)) == "handled"
    before = await _ledger_rows(db, owner.id)
    theirs = other.post(["TWITTER"], pending_post_id=post.data["pending_post_id"])
    mine = other.post(["TWITTER"])
    outcomes = await consumer.handle_batch([as_record(p, topic=CONTENT) for p in (theirs, mine)])
    assert outcomes == ["handled", "handled"]
    debited = await _outbox(db, "CreditsDebited")
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
    [refund] = await _outbox(db, "CreditsRefunded")
    assert (refund["organizationid"], refund["data"]["amount"]) == (other.id, 1)
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 7  # type: ignore[arg-type]
    assert (await balance_of(db.pool, uuid.UUID(other.id))).total == 7  # type: ignore[arg-type]
    assert await _ledger_rows(db, owner.id) == before
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


async def test_a_failure_naming_another_organizations_pending_post_is_refused(
    db: Database, consumer: EventConsumer
) -> None:
    owner, other = Org(), Org()
    await consumer.handle_record(as_record(owner.grant(10)))
    post = owner.post(["TWITTER", "LINKEDIN"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    failed = other.event(
        "PostPublishFailed",
        pending_post_id=post.data["pending_post_id"],
        run_id=post.data["run_id"],
        platform="TWITTER",
    )
    assert await consumer.handle_record(as_record(failed, topic=PUBLISHER)) == "dead_lettered"
    [letter] = await _dead_letters(db)
    assert f"pending post {post.data['pending_post_id']} belongs to another organization" in letter["error"]
    assert await _outbox(db, "CreditsRefunded") == []
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 7  # type: ignore[arg-type]


async def test_a_debit_naming_another_organizations_post_is_refused(db: Database, consumer: EventConsumer) -> None:
    owner, intruder = Org(), Org()
    await consumer.handle_record(as_record(owner.grant(10)))
    post = owner.post(["TWITTER"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    steal = intruder.run_ended(post, "REJECTED")
    assert await consumer.handle_record(as_record(steal, topic=ANALYTICS)) == "dead_lettered"
    [letter] = await _dead_letters(db)
    # It says which id is not the sender's, and nothing of the owner's (its pending post).
    assert f"run {post.data['run_id']} belongs to another organization" in letter["error"]
    assert post.data["pending_post_id"] not in letter["error"]
    assert await _outbox(db, "CreditsRefunded") == []
    assert (await balance_of(db.pool, uuid.UUID(owner.id))).total == 8  # type: ignore[arg-type]


async def test_subscription_periods_do_not_roll_over_and_top_ups_are_spent_last(
    db: Database, consumer: EventConsumer
) -> None:
    org = Org()
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


async def test_no_subscription_and_no_credits_is_rejected_as_such(db: Database, consumer: EventConsumer) -> None:
    org = Org()
    post = org.post(["TWITTER"])
    await consumer.handle_record(as_record(post, topic=CONTENT))
    (rejected,) = await _outbox(db, "CreditsDebitRejected")
    assert rejected["data"]["reason"] == "NO_SUBSCRIPTION"
    assert (rejected["data"]["requested"], rejected["data"]["available"]) == (2, 0)
    (completed,) = await _outbox(db, "ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "INSUFFICIENT_CREDITS"
    assert completed["data"]["run_id"] == post.data["run_id"]
    assert completed["data"]["due_at"] == post.data["due_at"]


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
    db: Database, consumer: EventConsumer, ops: list[tuple[str, Any, int]], batch: int
) -> None:
    """Events come in consumer batches of `batch` (1: one transaction each), each batch twice."""
    org = Org()
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
            event = org.event(
                "PostPublishFailed",
                pending_post_id=post.data["pending_post_id"],
                run_id=post.data["run_id"],
                platform=value,
            )
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
    assert balance.total == await _ledger_sum(db, org.id)
    keys = await db.pool.fetch("SELECT idempotency_key FROM ledger WHERE organization_id = $1", org_id)
    assert len({k["idempotency_key"] for k in keys}) == len(keys)
    topups = await db.pool.fetchval(
        "SELECT count(*) FROM ledger WHERE organization_id = $1 AND action = 'TOPUP'", org_id
    )
    assert topups == len(granted)
    debits = await db.pool.fetch("SELECT * FROM debits WHERE organization_id = $1", org_id)
    for d in debits:  # refunds never exceed what was taken
        assert d["refunded_period"] + d["refunded_topup"] <= d["from_period"] + d["from_topup"]


async def test_a_batch_of_debits_decides_exactly_as_one_at_a_time(db: Database, consumer: EventConsumer) -> None:
    """The same posts for two organizations with the same credits: one by one for the first,
    in one batch for the second (with a redelivered post and a second event for a post in it).
    The ledgers, balances and emitted events must be the same."""
    orgs = [Org(), Org()]
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

    async def ledger_of(org: Org) -> list[tuple[Any, ...]]:
        rows = await db.pool.fetch(
            "SELECT action, period_amount, topup_amount, balance_after FROM ledger"
            " WHERE organization_id = $1 ORDER BY id",
            uuid.UUID(org.id),
        )
        return [tuple(r) for r in rows]

    async def events_of(org: Org) -> list[tuple[Any, ...]]:
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
        assert await _ledger_sum(db, org.id) == 0
    assert await verify_all(db.pool) == []  # type: ignore[arg-type]


# --- through Kafka, as upstream and a dashboard see it ----------------------------------------


@pytest.fixture
async def billing(database_url: str, kafka: KafkaSettings) -> AsyncIterator[ServiceRuntime]:
    async with ServiceRuntime(definition(), settings=_settings(database_url), kafka=kafka) as runtime:
        yield runtime


async def test_with_5_credits_ten_2_credit_posts_give_two_debits_and_eight_rejections(
    billing: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    org = Org()
    grant = org.grant(5)
    await send_event(producer, kafka, UPSTREAM, grant)
    await send_event(producer, kafka, UPSTREAM, grant)  # delivered twice: counts once
    await send_event(producer, kafka, UPSTREAM, org.grant(0 + 1, grant.data["grant_id"]))  # same grant id
    # Grants travel on upstream.events, posts on content.events: Kafka orders neither against
    # the other, so the posts go out once the grant is in.
    org_id = uuid.UUID(org.id)

    async def granted() -> bool:
        return (await balance_of(billing.db.pool, org_id)).total == 5  # type: ignore[arg-type]

    await eventually(granted)
    posts = [org.post(["TWITTER"]) for _ in range(10)]
    debited_before = REGISTRY.get_sample_value("hopcast_billing_credits_debited_total") or 0
    rejected_labels = {"reason": "INSUFFICIENT_CREDITS"}
    rejected_before = REGISTRY.get_sample_value("hopcast_billing_debits_rejected_total", rejected_labels) or 0
    for post in posts:
        await send_event(producer, kafka, CONTENT, post)
    await send_event(producer, kafka, CONTENT, posts[0])  # redelivered

    events = await read_events(kafka, kafka.topic(BILLING), expect=10)
    debited = [e for e in events if e["type"] == "CreditsDebited"]
    rejected = [e for e in events if e["type"] == "CreditsDebitRejected"]
    assert [e["data"]["balance_after"] for e in debited] == [3, 1]
    assert len(rejected) == 8
    assert {e["data"]["pending_post_id"] for e in debited + rejected} == {p.data["pending_post_id"] for p in posts}
    completed = await read_events(kafka, kafka.topic(ANALYTICS), expect=8, event_type="ScheduleRunCompleted")
    assert len(completed) == 8 and {e["data"]["outcome"] for e in completed} == {"INSUFFICIENT_CREDITS"}
    assert (await balance_of(billing.db.pool, uuid.UUID(org.id))).total == 1  # type: ignore[arg-type]
    assert await _ledger_sum(billing.db, org.id) == 1
    assert REGISTRY.get_sample_value("hopcast_billing_credits_debited_total") == debited_before + 4
    assert REGISTRY.get_sample_value("hopcast_billing_debits_rejected_total", rejected_labels) == rejected_before + 8


async def test_http_reads_and_verify_agree_with_the_ledger(
    db: Database, consumer: EventConsumer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hopcast_billing.entrypoints.cli import app
    from hopcast_billing.entrypoints.http import routes

    org = Org()
    await consumer.handle_record(as_record(org.period(10, datetime(2027, 1, 1, tzinfo=UTC))))
    await consumer.handle_record(as_record(org.grant(4)))
    await consumer.handle_record(as_record(org.post(["TWITTER", "LINKEDIN"]), topic=CONTENT))

    class Runtime:
        def __init__(self) -> None:
            self.db = db

    credits, ledger_page = routes(Runtime())  # type: ignore[arg-type]
    found = await credits.handler({"id": org.id}, {})
    assert found.status == 200
    assert (found.body["balance"], found.body["period_credits"], found.body["topup_credits"]) == (11, 7, 4)
    assert found.body["plan"] == "STARTER" and found.body["period_end"].startswith("2027-01-31")
    first = await ledger_page.handler({"id": org.id}, {"limit": "2"})
    assert [e["action"] for e in first.body["entries"]] == ["PUBLISH", "GENERATE"]
    rest = await ledger_page.handler({"id": org.id}, {"limit": "2", "before": str(first.body["next_before"])})
    assert [e["action"] for e in rest.body["entries"]] == ["TOPUP", "SUBSCRIPTION"]
    assert sum(e["amount"] for e in first.body["entries"] + rest.body["entries"]) == 11

    monkeypatch.setenv("BILLING_DATABASE_URL", database_url)
    # The command runs its own event loop: give it a thread of its own.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["verify"])
    assert result.exit_code == 0, result.output
    # A balance changed behind the ledger's back is found.
    await db.pool.execute(
        "UPDATE balances SET topup_credits = topup_credits + 1 WHERE organization_id = $1", uuid.UUID(org.id)
    )
    result = await asyncio.to_thread(CliRunner().invoke, app, ["verify"])
    assert result.exit_code == 1 and f"MISMATCH {org.id}" in result.output
