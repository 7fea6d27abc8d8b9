"""The scheduler follows its runs (issue 19): the stages the events report, a reviewer's wait
that stops the deadline, a deferral that moves it, RunDeadlinePassed told once per run whatever
the replicas, the gauge's counts, and GET /runs/{id}."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_scheduler.adapters.runs import open_past_deadline
from hopcast_scheduler.entrypoints.http import routes
from hopcast_scheduler.service_layer.handlers import SchedulerDeps
from hopcast_scheduler.service_layer.runs import watch_deadlines
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.db import Database
from hopcast_shared.testing import CountingDatabase, as_record
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER

pytestmark = pytest.mark.integration

DEADLINE = timedelta(minutes=10)
DEPS = SchedulerDeps(run_deadline=DEADLINE)


async def _run(db: Database, run_id: str) -> Any:
    return await db.pool.fetchrow("SELECT * FROM schedule_runs WHERE run_id = $1", uuid.UUID(run_id))


async def _told(db: Database, run_id: str) -> list[dict[str, Any]]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE topic LIKE '%scheduler.events' ORDER BY id")
    events = [json.loads(r["payload"]) for r in rows]
    return [e for e in events if e["type"] == "RunDeadlinePassed" and e["data"]["run_id"] == run_id]


async def _watch(db: Database, stack: Any, now: datetime) -> int:
    async with db.transaction() as conn:
        return await watch_deadlines(DEPS, conn, stack.kafka_settings, now=now, limit=100)


def _draft(t: Any, run_id: str, pending_post_id: str, *, manual: bool) -> Any:
    return t.event(
        "PendingPostCreated",
        run_id=run_id,
        pending_post_id=pending_post_id,
        schedule_id=t.schedule_id,
        brand_profile_id=t.brand,
        requires_approval=manual,
        time=datetime.now(UTC),
    )


async def test_a_reviewers_wait_stops_the_deadline_and_the_run_is_told_once(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any], stack: Any
) -> None:
    t = await scheduler_tenant().create()
    run_id = await t.trigger(scheduler_db)
    started = (await _run(scheduler_db, run_id))["created_at"]
    pending_post_id = str(uuid.uuid4())
    assert await t.send(_draft(t, run_id, pending_post_id, manual=True), CONTENT) == "handled"
    waiting = await _run(scheduler_db, run_id)
    assert waiting["approval_wait_since"] is not None and str(waiting["pending_post_id"]) == pending_post_id

    # Waiting for the reviewer: no deadline runs, however long it takes.
    assert await _watch(scheduler_db, stack, started + 3 * DEADLINE) == 0
    past, twice = await open_past_deadline(scheduler_db.pool, started + 3 * DEADLINE, DEADLINE)  # type: ignore[arg-type]
    assert (past, twice) >= (0, 0) and await _told(scheduler_db, run_id) == []

    # Approved an hour after the draft: the deadline moves on by the hour waited.
    approved_at = waiting["approval_wait_since"] + timedelta(hours=1)
    approval = t.event("PendingPostApproved", pending_post_id=pending_post_id, time=approved_at)
    assert await t.send(approval) == "handled"
    resumed = await _run(scheduler_db, run_id)
    assert resumed["approval_wait_since"] is None
    assert resumed["deadline_at"] >= started + DEADLINE + timedelta(hours=1) - timedelta(seconds=1)

    assert await _watch(scheduler_db, stack, resumed["deadline_at"] - timedelta(seconds=1)) == 0
    # Two replicas watching at once: the run is told once.
    told = await asyncio.gather(*(_watch(scheduler_db, stack, resumed["deadline_at"]) for _ in range(2)))
    assert sorted(told) == [0, 1]
    assert await _watch(scheduler_db, stack, resumed["deadline_at"] + DEADLINE) == 0
    [passed] = await _told(scheduler_db, run_id)
    assert passed["correlationid"] == run_id and passed["organizationid"] == t.org
    assert (passed["data"]["schedule_id"], passed["data"]["brand_profile_id"]) == (t.schedule_id, t.brand)

    # The holder ends it: the outcome is recorded and the run leaves the open ones.
    ended = t.event(
        "ScheduleRunCompleted",
        run_id=run_id,
        schedule_id=t.schedule_id,
        brand_profile_id=t.brand,
        time=resumed["deadline_at"] + DEADLINE,
    )
    ended.data["outcome"] = "TIMED_OUT"
    assert await t.send(ended, ANALYTICS) == "handled"
    assert (await _run(scheduler_db, run_id))["outcome"] == "TIMED_OUT"

    class Runtime:
        db = scheduler_db

    get_run = next(r for r in routes(Runtime(), DEPS) if r.template == "/runs/{id}")  # type: ignore[arg-type]
    found = await get_run.handler({"id": run_id}, {})
    assert found.status == 200 and str(found.organization) == t.org
    stages = [s["stage"] for s in found.body["stages"]]
    assert stages[0] == "ScheduleDue" and stages[-1] == "ScheduleRunCompleted"
    assert {"PendingPostCreated", "PendingPostApproved", "RunDeadlinePassed"} <= set(stages)
    assert found.body["outcome"] == "TIMED_OUT"
    assert (await get_run.handler({"id": str(uuid.uuid4())}, {})).status == 404
    with pytest.raises(ValueError, match="run id must be a UUID"):  # the router answers 400
        await get_run.handler({"id": "not-a-uuid"}, {})


async def test_an_approval_read_before_its_draft_stops_nothing(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any]
) -> None:
    t = await scheduler_tenant().create()
    run_id = await t.trigger(scheduler_db)
    pending_post_id = str(uuid.uuid4())
    assert await t.send(t.event("PendingPostApproved", pending_post_id=pending_post_id)) == "handled"
    assert await t.send(_draft(t, run_id, pending_post_id, manual=True), CONTENT) == "handled"
    run = await _run(scheduler_db, run_id)
    assert run["approval_wait_since"] is None  # decided already: the deadline never stopped
    stages = await scheduler_db.pool.fetch("SELECT stage FROM run_stages WHERE run_id = $1", uuid.UUID(run_id))
    assert {r["stage"] for r in stages} == {"PendingPostApproved", "PendingPostCreated"}


async def test_credits_and_a_deferral_are_recorded_and_a_deferral_moves_the_deadline(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any], stack: Any
) -> None:
    t = await scheduler_tenant().create()
    run_id = await t.trigger(scheduler_db)
    pending_post_id = str(uuid.uuid4())
    assert await t.send(_draft(t, run_id, pending_post_id, manual=False), CONTENT) == "handled"
    debited = t.event("CreditsDebited", run_id=run_id, pending_post_id=pending_post_id)
    debited.data.update(amount=3, balance_after=297)
    assert await t.send(debited, BILLING) == "handled"
    retry_at = datetime.now(UTC) + timedelta(hours=5)
    deferred = t.event("PostPublishDeferred", run_id=run_id, pending_post_id=pending_post_id)
    deferred.data["retry_at"] = retry_at.isoformat()
    assert await t.send(deferred, PUBLISHER) == "handled"
    assert (await _run(scheduler_db, run_id))["deadline_at"] >= retry_at + DEADLINE - timedelta(seconds=1)
    assert await _watch(scheduler_db, stack, retry_at) == 0  # not before the platform's retry
    credits = await scheduler_db.pool.fetchval(
        "SELECT sum(credits) FROM run_stages WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert credits == -3


async def test_another_organizations_event_naming_the_run_is_refused(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any]
) -> None:
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    run_id = await owner.trigger(scheduler_db)
    forged = other.event("CreditsDebited", run_id=run_id)
    assert await other.send(forged, BILLING) == "dead_lettered"
    count = await scheduler_db.pool.fetchval("SELECT count(*) FROM run_stages WHERE run_id = $1", uuid.UUID(run_id))
    assert count == 0


async def test_a_batch_of_reported_stages_is_one_statement_and_a_forged_one_is_refused_alone(
    scheduler_db: Database, scheduler_tenant: Callable[[], Any], scheduler_consumer_on: Callable[..., EventConsumer]
) -> None:
    """The events that only report a stage share one statement per batch; one naming another
    organization's run sends the batch back one event at a time, so that one alone is
    dead-lettered, and one naming a run nobody has records nothing."""
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    run_id = await owner.trigger(scheduler_db)
    counting = CountingDatabase(scheduler_db)
    consumer = scheduler_consumer_on(counting, consumer_lanes=1)  # one transaction for the batch
    debited = owner.event("CreditsDebited", run_id=run_id)
    debited.data.update(amount=3, balance_after=297)
    published = [
        owner.event("PostPublished", run_id=run_id, platform=p, external_url=f"https://{p.lower()}.example/1")
        for p in ("MASTODON", "BLUESKY")
    ]
    unknown = owner.event("CreditsDebited", run_id=str(uuid.uuid4()))
    records = [as_record(debited, topic=BILLING), *(as_record(p, topic=PUBLISHER) for p in published)]
    records.append(as_record(unknown, topic=BILLING))
    assert await consumer.handle_batch(records) == ["handled"] * 4
    # One transaction: the inbox, the stages of all four events, the outbox's nothing.
    [statements] = counting.transactions
    assert sum("INSERT INTO run_stages" in q for q in statements) == 1
    rows = await scheduler_db.pool.fetch(
        "SELECT stage, platform, credits FROM run_stages WHERE run_id = $1 ORDER BY id", uuid.UUID(run_id)
    )
    assert sorted((r["stage"], r["platform"], r["credits"]) for r in rows) == [
        ("CreditsDebited", None, -3),
        ("PostPublished", "BLUESKY", None),
        ("PostPublished", "MASTODON", None),
    ]
    stray = await scheduler_db.pool.fetchval(
        "SELECT count(*) FROM run_stages WHERE run_id = $1", uuid.UUID(unknown.data["run_id"])
    )
    assert stray == 0

    refunded = owner.event("CreditsRefunded", run_id=run_id)
    forged = other.event("PostPublishFailed", run_id=run_id)
    counting.transactions.clear()
    batch = [as_record(refunded, topic=BILLING), as_record(forged, topic=PUBLISHER)]
    assert await consumer.handle_batch(batch) == ["handled", "dead_lettered"]
    assert len(counting.transactions) >= 3  # the batch, rolled back; then each event on its own
    stages = await scheduler_db.pool.fetch(
        "SELECT stage FROM run_stages WHERE run_id = $1 ORDER BY id", uuid.UUID(run_id)
    )
    assert [r["stage"] for r in stages][3:] == ["CreditsRefunded"]
