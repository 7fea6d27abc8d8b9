"""No organization touches another's through the ids its events name: each case is either
applied to the sender alone or dead-lettered saying the id is another organization's; never
ignored, and never a change of the owner's rows. On the real database, through the consumer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from hopcast_scheduler.service_layer.handlers import SchedulerDeps, trigger_requested
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import ScheduleTriggerRequested
from hopcast_shared.db import Database
from hopcast_shared.handling import EventContext
from hopcast_shared.topics import ANALYTICS

pytestmark = pytest.mark.integration


@pytest.fixture
def db(scheduler_db: Database) -> Database:
    return scheduler_db


@pytest.fixture
def consumer(scheduler_consumer: EventConsumer) -> EventConsumer:
    return scheduler_consumer


async def _dead_letter_errors(db: Database) -> list[str]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE topic LIKE '%.dlq' ORDER BY id")
    return [json.loads(r["payload"])["error"] for r in rows]


async def _schedule(db: Database, schedule_id: str) -> asyncpg.Record:
    row = await db.pool.fetchrow("SELECT * FROM schedules WHERE id = $1", uuid.UUID(schedule_id))
    assert row is not None
    return row


async def test_an_outcome_naming_another_organizations_run_is_refused_and_changes_nothing(
    db: Database, consumer: EventConsumer, scheduler_tenant: Callable[[], Any]
) -> None:
    """It used to end the owner's run and count against the owner's schedule (five errors in
    a row pause it)."""
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    run_id = await owner.trigger(db)
    ended = other.event(
        "ScheduleRunCompleted",
        run_id=run_id,
        schedule_id=owner.schedule_id,
        brand_profile_id=owner.brand,
        outcome="PUBLISH_FAILED",
    )
    assert await other.send(ended, ANALYTICS) == "dead_lettered"
    assert await _dead_letter_errors(db) == [f"PermanentError: run {run_id} belongs to another organization"]
    run = await db.pool.fetchrow("SELECT outcome FROM schedule_runs WHERE run_id = $1", uuid.UUID(run_id))
    assert run["outcome"] is None
    schedule = await _schedule(db, owner.schedule_id)
    assert (schedule["consecutive_errors"], schedule["last_outcome"]) == (0, None)
    # The owner's own outcome is still recorded.
    mine = owner.event(
        "ScheduleRunCompleted",
        run_id=run_id,
        schedule_id=owner.schedule_id,
        brand_profile_id=owner.brand,
        outcome="PUBLISH_FAILED",
    )
    assert await owner.send(mine, ANALYTICS) == "handled"
    schedule = await _schedule(db, owner.schedule_id)
    assert (schedule["consecutive_errors"], schedule["last_outcome"]) == (1, "PUBLISH_FAILED")


async def test_a_trigger_reusing_another_organizations_event_id_is_its_own_run(
    db: Database, consumer: EventConsumer, scheduler_tenant: Callable[[], Any], stack: Any
) -> None:
    """A trigger is once per event id of its organization. The handler is driven as the
    consumer drives it once the kernel's inbox is scoped by organization (today the inbox
    itself takes the second event for a redelivery): it used to fire nothing, its run
    refused by the unique trigger_event_id of the first organization's run."""
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    event_id = uuid.uuid4()
    first = owner.event("ScheduleTriggerRequested", schedule_id=owner.schedule_id, event_id=event_id)
    assert await owner.send(first) == "handled"
    second = other.event("ScheduleTriggerRequested", schedule_id=other.schedule_id, event_id=event_id)
    async with db.transaction() as conn:
        ctx = EventContext(conn, second, "scheduler", stack.kafka_settings)
        await trigger_requested(SchedulerDeps(), ctx, ScheduleTriggerRequested.model_validate(second.data))
    [due] = [json.loads(row.payload) for row in ctx.outbox]
    assert (due["organizationid"], due["data"]["schedule_id"]) == (other.org, other.schedule_id)
    runs = await db.pool.fetch(
        "SELECT organization_id, schedule_id FROM schedule_runs WHERE trigger_event_id = $1 ORDER BY organization_id",
        event_id,
    )
    assert sorted((str(r["organization_id"]), str(r["schedule_id"])) for r in runs) == sorted(
        [(owner.org, owner.schedule_id), (other.org, other.schedule_id)]
    )
    # Within one organization it is still once.
    async with db.transaction() as conn:
        again = EventContext(conn, second, "scheduler", stack.kafka_settings)
        await trigger_requested(SchedulerDeps(), again, ScheduleTriggerRequested.model_validate(second.data))
    assert again.outbox == []


@pytest.mark.parametrize("type_name", ["BrandProfileDeleted", "BrandProfileRestored"])
async def test_deleting_or_restoring_another_organizations_brand_is_refused(
    db: Database, consumer: EventConsumer, scheduler_tenant: Callable[[], Any], type_name: str
) -> None:
    """It used to be consumed without a trace (nothing changed, nothing said)."""
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    if type_name == "BrandProfileRestored":
        assert await owner.send(owner.event("BrandProfileDeleted", brand_profile_id=owner.brand)) == "handled"
    before = await db.pool.fetchrow("SELECT * FROM brands WHERE id = $1", uuid.UUID(owner.brand))
    assert await other.send(other.event(type_name, brand_profile_id=owner.brand)) == "dead_lettered"
    assert await _dead_letter_errors(db) == [f"PermanentError: brand {owner.brand} belongs to another organization"]
    assert await db.pool.fetchrow("SELECT * FROM brands WHERE id = $1", uuid.UUID(owner.brand)) == before
    # A brand no organization has yet is no one's: nothing to refuse.
    assert await other.send(other.event(type_name, brand_profile_id=str(uuid.uuid4()))) == "handled"


async def test_a_material_for_another_organizations_brand_is_refused_and_wakes_nothing(
    db: Database, consumer: EventConsumer, scheduler_tenant: Callable[[], Any]
) -> None:
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    await db.pool.execute("UPDATE schedules SET status = 'EXHAUSTED' WHERE id = $1", uuid.UUID(owner.schedule_id))
    material = other.event("MaterialSubmitted", material_id=str(uuid.uuid4()), brand_profile_id=owner.brand)
    assert await other.send(material) == "dead_lettered"
    assert await _dead_letter_errors(db) == [f"PermanentError: brand {owner.brand} belongs to another organization"]
    assert (await _schedule(db, owner.schedule_id))["status"] == "EXHAUSTED"
    mine = owner.event("MaterialSubmitted", material_id=str(uuid.uuid4()), brand_profile_id=owner.brand)
    assert await owner.send(mine) == "handled"
    assert (await _schedule(db, owner.schedule_id))["status"] == "ACTIVE"


async def test_commands_naming_another_organizations_schedule_say_so(
    db: Database, consumer: EventConsumer, scheduler_tenant: Callable[[], Any]
) -> None:
    owner, other = await scheduler_tenant().create(), await scheduler_tenant().create()
    before = await _schedule(db, owner.schedule_id)
    for type_name in ("SchedulePaused", "ScheduleResumed", "ScheduleDeleted", "ScheduleTriggerRequested"):
        assert await other.send(other.event(type_name, schedule_id=owner.schedule_id)) == "dead_lettered"
    updated = other.event(
        "ScheduleUpdated", schedule_id=owner.schedule_id, brand_profile_id=other.brand, days_of_week=[1]
    )
    assert await other.send(updated) == "dead_lettered"
    stolen_brand = other.event("ScheduleCreated", schedule_id=str(uuid.uuid4()), brand_profile_id=owner.brand)
    assert await other.send(stolen_brand) == "dead_lettered"
    errors = await _dead_letter_errors(db)
    assert errors[:4] == [f"PermanentError: schedule {owner.schedule_id} belongs to another organization"] * 4
    assert f"schedule {owner.schedule_id} belongs to another organization" in errors[4]
    assert f"brand {owner.brand} belongs to another organization" in errors[5]
    assert await _schedule(db, owner.schedule_id) == before
    assert await db.pool.fetchval("SELECT count(*) FROM schedule_runs") == 0
