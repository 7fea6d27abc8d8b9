"""The scheduler on the real database and broker: given these events, expect those events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from hopcast_scheduler.adapters.repository import due_backlog
from hopcast_scheduler.bootstrap import MIGRATIONS, definition
from hopcast_scheduler.entrypoints.tick import claim_once
from hopcast_scheduler.service_layer.handlers import SchedulerDeps, claim_and_emit
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.dlq import read_dead_letters
from hopcast_shared.migrations import load_migrations
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import eventually, read_events, send_event
from hopcast_shared.topics import ANALYTICS, SCHEDULER, UPSTREAM

pytestmark = pytest.mark.integration
DEPS = SchedulerDeps()


def _settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(
        name="scheduler",
        database_url=database_url,
        http_port=18081,
        handler_backoff_initial_s=0.01,
        outbox_poll_interval_s=0.2,
    )


@pytest.fixture
async def scheduler(database_url: str, kafka: KafkaSettings) -> AsyncIterator[ServiceRuntime]:
    async with ServiceRuntime(definition(), settings=_settings(database_url), kafka=kafka) as runtime:
        yield runtime


class Tenant:
    """One organization with one brand, as upstream creates them."""

    def __init__(self) -> None:
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def create(self, producer: AIOKafkaProducer, kafka: KafkaSettings) -> None:
        await send_event(producer, kafka, UPSTREAM, self.event("OrganizationCreated"))
        await send_event(producer, kafka, UPSTREAM, self.event("BrandProfileCreated", brand_profile_id=self.brand))

    def schedule(self, schedule_id: str, **changes: Any) -> Any:
        values = {
            "schedule_id": schedule_id,
            "brand_profile_id": self.brand,
            "timezone": "Europe/Berlin",
            "times": ["09:00"],
            "days_of_week": [1, 2, 3, 4, 5],
            "platforms": ["TWITTER", "LINKEDIN"],
        }
        values.update(changes)
        return self.event("ScheduleCreated", **values)


async def _schedule_row(db: Database, schedule_id: str) -> asyncpg.Record | None:
    return await db.pool.fetchrow("SELECT * FROM schedules WHERE id = $1", uuid.UUID(schedule_id))


async def test_post_now_delivered_three_times_yields_one_schedule_due(
    scheduler: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    tenant = Tenant()
    await tenant.create(producer, kafka)
    schedule_id = str(uuid.uuid4())
    await send_event(producer, kafka, UPSTREAM, tenant.schedule(schedule_id))
    trigger = tenant.event("ScheduleTriggerRequested", schedule_id=schedule_id)
    for _ in range(3):
        await send_event(producer, kafka, UPSTREAM, trigger)

    due = await read_events(kafka, kafka.topic(SCHEDULER), expect=1, event_type="ScheduleDue")
    await asyncio.sleep(1.0)  # room for a wrong second one to show up
    due = await read_events(kafka, kafka.topic(SCHEDULER), expect=2, event_type="ScheduleDue", within=1.0)
    assert len(due) == 1
    event = due[0]
    assert event["organizationid"] == tenant.org
    assert event["data"]["schedule_id"] == schedule_id
    assert event["data"]["brand_profile_id"] == tenant.brand
    assert event["data"]["platforms"] == ["TWITTER", "LINKEDIN"]
    assert event["correlationid"] == event["data"]["run_id"]
    assert event["causationid"] == str(trigger.id)
    assert datetime.fromisoformat(event["data"]["due_at"]) <= datetime.now(UTC)


async def test_a_deleted_schedule_stays_silent(
    scheduler: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    tenant = Tenant()
    await tenant.create(producer, kafka)
    schedule_id = str(uuid.uuid4())
    await send_event(producer, kafka, UPSTREAM, tenant.schedule(schedule_id))
    await send_event(producer, kafka, UPSTREAM, tenant.event("ScheduleDeleted", schedule_id=schedule_id))
    await send_event(producer, kafka, UPSTREAM, tenant.event("ScheduleTriggerRequested", schedule_id=schedule_id))
    row = await eventually(lambda: _deleted(scheduler.db, schedule_id))
    assert row["deleted_at"] is not None
    # The trigger after the delete was consumed (it is in the inbox) and fired nothing.
    await eventually(lambda: _inbox_has(scheduler.db, "ScheduleTriggerRequested"))
    assert await read_events(kafka, kafka.topic(SCHEDULER), expect=1, within=1.5) == []


async def _deleted(db: Database, schedule_id: str) -> asyncpg.Record | None:
    row = await _schedule_row(db, schedule_id)
    return row if row is not None and row["deleted_at"] is not None else None


async def _inbox_has(db: Database, event_type: str) -> bool:
    return bool(await db.pool.fetchval("SELECT count(*) FROM inbox WHERE event_type = $1", event_type))


async def test_invalid_schedules_land_in_the_dlq_with_the_reason(
    scheduler: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    tenant = Tenant()
    await tenant.create(producer, kafka)
    bad_zone = tenant.schedule(str(uuid.uuid4()))
    raw = json.loads(bad_zone.to_json())
    raw["data"]["timezone"] = "Mars/Olympus_Mons"
    await producer.send_and_wait(kafka.topic(UPSTREAM), json.dumps(raw).encode(), key=tenant.org.encode())
    unknown_brand = tenant.schedule(str(uuid.uuid4()), brand_profile_id=str(uuid.uuid4()))
    await send_event(producer, kafka, UPSTREAM, unknown_brand)
    too_many = json.loads(tenant.schedule(str(uuid.uuid4())).to_json())
    too_many["data"]["times"] = [f"{h:02d}:00" for h in range(11)]
    await producer.send_and_wait(kafka.topic(UPSTREAM), json.dumps(too_many).encode(), key=tenant.org.encode())
    good = str(uuid.uuid4())
    await send_event(producer, kafka, UPSTREAM, tenant.schedule(good))

    assert await eventually(lambda: _schedule_row(scheduler.db, good))
    letters = await eventually(lambda: _letters(kafka, 3))
    by_id = {letter.event_id: letter for letter in letters}
    assert "data.timezone" in by_id[raw["id"]].error
    assert "unknown brand_profile_id" in by_id[str(unknown_brand.id)].error
    assert "data.times" in by_id[too_many["id"]].error
    assert all(letter.event_type == "ScheduleCreated" for letter in letters)


async def _letters(kafka: KafkaSettings, n: int) -> list[Any]:
    letters = await read_dead_letters(kafka, "scheduler", timeout_s=0.5)
    return letters if len(letters) >= n else []


async def test_due_schedules_fire_and_advance_through_the_tick_loop(
    scheduler: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    tenant = Tenant()
    await tenant.create(producer, kafka)
    schedule_id = str(uuid.uuid4())
    await send_event(producer, kafka, UPSTREAM, tenant.schedule(schedule_id, days_of_week=[0, 1, 2, 3, 4, 5, 6]))
    row = await eventually(lambda: _schedule_row(scheduler.db, schedule_id))
    due_at = datetime.now(UTC) - timedelta(seconds=5)
    await scheduler.db.pool.execute("UPDATE schedules SET next_run_at = $2 WHERE id = $1", row["id"], due_at)

    due = await read_events(kafka, kafka.topic(SCHEDULER), expect=1, event_type="ScheduleDue")
    assert len(due) == 1
    assert datetime.fromisoformat(due[0]["data"]["due_at"]) == due_at
    after = await _schedule_row(scheduler.db, schedule_id)
    assert after is not None and after["next_run_at"] > datetime.now(UTC)
    assert after["last_run_at"] == due_at


async def test_outcomes_move_the_status(
    scheduler: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    tenant = Tenant()
    await tenant.create(producer, kafka)
    schedule_id = str(uuid.uuid4())
    await send_event(producer, kafka, UPSTREAM, tenant.schedule(schedule_id))
    await eventually(lambda: _schedule_row(scheduler.db, schedule_id))

    async def run_with(outcome: str) -> None:
        trigger = tenant.event("ScheduleTriggerRequested", schedule_id=schedule_id)
        await send_event(producer, kafka, UPSTREAM, trigger)
        run_id = await eventually(lambda: _run_for_trigger(scheduler.db, trigger.id))
        completed = tenant.event(
            "ScheduleRunCompleted",
            run_id=str(run_id),
            schedule_id=schedule_id,
            brand_profile_id=tenant.brand,
            outcome=outcome,
        )
        await send_event(producer, kafka, ANALYTICS, completed)
        await eventually(lambda: _run_completed(scheduler.db, run_id))

    await run_with("NO_MATERIAL")
    assert (await _schedule_row(scheduler.db, schedule_id))["status"] == "EXHAUSTED"
    await send_event(producer, kafka, UPSTREAM, tenant.event("MaterialSubmitted", brand_profile_id=tenant.brand))
    await eventually(lambda: _status_is(scheduler.db, schedule_id, "ACTIVE"))

    for _ in range(5):
        await run_with("PUBLISH_FAILED")
    row = await _schedule_row(scheduler.db, schedule_id)
    assert row["status"] == "ERROR" and row["consecutive_errors"] == 5
    await send_event(producer, kafka, UPSTREAM, tenant.event("ScheduleResumed", schedule_id=schedule_id))
    row = await eventually(lambda: _status_is(scheduler.db, schedule_id, "ACTIVE"))
    assert row["consecutive_errors"] == 0


async def _run_for_trigger(db: Database, trigger_id: uuid.UUID) -> uuid.UUID | None:
    return await db.pool.fetchval("SELECT run_id FROM schedule_runs WHERE trigger_event_id = $1", trigger_id)


async def _run_completed(db: Database, run_id: uuid.UUID) -> bool:
    return bool(await db.pool.fetchval("SELECT outcome IS NOT NULL FROM schedule_runs WHERE run_id = $1", run_id))


async def _status_is(db: Database, schedule_id: str, status: str) -> asyncpg.Record | None:
    row = await _schedule_row(db, schedule_id)
    return row if row is not None and row["status"] == status else None


# --- claiming, straight on the database ------------------------------------------------------


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("scheduler", MIGRATIONS), max_size=8)
    yield database
    await database.close()


async def _seed(db: Database, n: int, *, next_run_at: datetime, policy: str = "ONCE", **brand: Any) -> list[uuid.UUID]:
    org, brand_id = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'o')", org)
        await conn.execute(
            "INSERT INTO brands (id, organization_id, name, timezone) VALUES ($1, $2, 'b', 'UTC')",
            brand_id,
            org,
        )
        ids = [uuid.uuid4() for _ in range(n)]
        await conn.executemany(
            """
            INSERT INTO schedules (id, organization_id, brand_profile_id, timezone, times, days_of_week, platforms,
                material_strategy, generation_mode, missed_run_policy, is_active, next_run_at)
            VALUES ($1, $2, $3, 'UTC', ARRAY['00:00','06:00','12:00','18:00'], ARRAY[0,1,2,3,4,5,6]::smallint[],
                ARRAY['TWITTER'], 'round_robin', 'autopilot', $4, true, $5)
            """,
            [(i, org, brand_id, policy, next_run_at) for i in ids],
        )
    return ids


async def test_two_replicas_racing_over_1000_due_schedules_fire_each_exactly_once(
    db: Database, kafka: KafkaSettings
) -> None:
    now = datetime(2027, 6, 1, 12, 3, tzinfo=UTC)
    ids = await _seed(db, 1000, next_run_at=datetime(2027, 6, 1, 12, 0, tzinfo=UTC))

    async def replica() -> int:
        fired = 0
        while True:
            async with db.transaction() as conn:
                n = await claim_and_emit(DEPS, conn, kafka, now=now, limit=50)
            if n == 0:
                return fired
            fired += n

    counts = await asyncio.gather(replica(), replica())
    assert sum(counts) == 1000
    assert min(counts) > 0  # both replicas took part
    runs = await db.pool.fetch("SELECT schedule_id, due_at FROM schedule_runs")
    assert len(runs) == 1000 and {r["schedule_id"] for r in runs} == set(ids)
    outbox = await db.pool.fetch("SELECT payload FROM outbox WHERE event_type = 'ScheduleDue'")
    run_ids = {json.loads(r["payload"])["data"]["run_id"] for r in outbox}
    assert len(outbox) == 1000 and len(run_ids) == 1000
    next_runs = await db.pool.fetch("SELECT DISTINCT next_run_at FROM schedules")
    assert [r["next_run_at"] for r in next_runs] == [datetime(2027, 6, 1, 18, 0, tzinfo=UTC)]


MISSED_RUNS = "hopcast_scheduler_missed_runs_total"


@pytest.mark.parametrize(
    ("policy", "fired", "missed"),
    [("SKIP", 0, 5), ("ONCE", 1, 5), ("ALL", 3, 5)],
)
async def test_missed_runs_follow_the_policy(
    db: Database, kafka: KafkaSettings, policy: str, fired: int, missed: int
) -> None:
    # Due since 06:00 on day one; found at 07:00 on day two: 06:00, 12:00, 18:00, 00:00, 06:00 missed.
    now = datetime(2027, 6, 2, 7, 0, tzinfo=UTC)
    (schedule_id,) = await _seed(db, 1, next_run_at=datetime(2027, 6, 1, 6, 0, tzinfo=UTC), policy=policy)
    missed_before = REGISTRY.get_sample_value(MISSED_RUNS, {"missed_run_policy": policy}) or 0
    async with db.pool.acquire() as conn:
        assert await due_backlog(conn, now) == 1
    async with db.transaction() as conn:
        assert await claim_and_emit(DEPS, conn, kafka, now=now, limit=10) == fired
    async with db.pool.acquire() as conn:
        assert await due_backlog(conn, now) == 0
    assert REGISTRY.get_sample_value(MISSED_RUNS, {"missed_run_policy": policy}) == missed_before + missed
    row = await db.pool.fetchrow("SELECT missed_runs, next_run_at FROM schedules WHERE id = $1", schedule_id)
    assert row["missed_runs"] == missed
    assert row["next_run_at"] == datetime(2027, 6, 2, 12, 0, tzinfo=UTC)
    due = sorted(r["due_at"] for r in await db.pool.fetch("SELECT due_at FROM schedule_runs"))
    expected = {
        "SKIP": [],
        "ONCE": [datetime(2027, 6, 2, 6, 0, tzinfo=UTC)],
        "ALL": [datetime(2027, 6, 2, h, 0, tzinfo=UTC) for h in (0, 6)] + [datetime(2027, 6, 1, 18, 0, tzinfo=UTC)],
    }[policy]
    assert due == sorted(expected)


async def test_deleted_brands_and_organizations_produce_no_runs(db: Database, kafka: KafkaSettings) -> None:
    now = datetime(2027, 6, 1, 12, 1, tzinfo=UTC)
    due = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    brand_gone = await _seed(db, 2, next_run_at=due)
    org_gone = await _seed(db, 3, next_run_at=due)
    alive = await _seed(db, 1, next_run_at=due)
    await db.pool.execute(
        "UPDATE brands SET deleted_at = now() WHERE id = (SELECT brand_profile_id FROM schedules WHERE id = $1)",
        brand_gone[0],
    )
    await db.pool.execute(
        "UPDATE organizations SET deleted_at = now() WHERE id = (SELECT organization_id FROM schedules WHERE id = $1)",
        org_gone[0],
    )
    async with db.transaction() as conn:
        assert await claim_and_emit(DEPS, conn, kafka, now=now, limit=100) == 1
    fired = [r["schedule_id"] for r in await db.pool.fetch("SELECT schedule_id FROM schedule_runs")]
    assert fired == alive


async def test_claim_once_uses_the_runtime_transaction(db: Database, kafka: KafkaSettings) -> None:
    class Runtime:  # the two attributes claim_once reads
        def __init__(self) -> None:
            self.db = db
            self.kafka = kafka

    await _seed(db, 3, next_run_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await claim_once(DEPS, Runtime(), 10) == 3  # type: ignore[arg-type]
    assert await claim_once(DEPS, Runtime(), 10) == 0


async def test_restoring_a_brand_or_organization_brings_its_schedules_back_from_now(
    db: Database, database_url: str, stack: Any
) -> None:
    from hopcast_shared.consumer import EventConsumer
    from hopcast_shared.testing import as_record

    consumer = EventConsumer(
        "scheduler", db, definition().handlers, kafka=stack.kafka_settings, settings=_settings(database_url)
    )
    tenant = Tenant()
    for event in (
        tenant.event("OrganizationCreated"),
        tenant.event("BrandProfileCreated", brand_profile_id=tenant.brand),
        tenant.schedule(schedule_id := str(uuid.uuid4()), days_of_week=[0, 1, 2, 3, 4, 5, 6]),
    ):
        assert await consumer.handle_record(as_record(event)) == "handled"
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    await db.pool.execute("UPDATE schedules SET next_run_at = $1", long_ago)

    await consumer.handle_record(as_record(tenant.event("BrandProfileDeleted", brand_profile_id=tenant.brand)))
    async with db.transaction() as conn:
        assert await claim_and_emit(DEPS, conn, stack.kafka_settings, now=datetime.now(UTC), limit=10) == 0
    await consumer.handle_record(as_record(tenant.event("BrandProfileRestored", brand_profile_id=tenant.brand)))
    row = await _schedule_row(db, schedule_id)
    assert row is not None and row["next_run_at"] > datetime.now(UTC)  # missed time while deleted is not owed

    await consumer.handle_record(as_record(tenant.event("OrganizationDeleted")))
    await db.pool.execute("UPDATE schedules SET next_run_at = $1", long_ago)
    async with db.transaction() as conn:
        assert await claim_and_emit(DEPS, conn, stack.kafka_settings, now=datetime.now(UTC), limit=10) == 0
    await consumer.handle_record(as_record(tenant.event("OrganizationRestored")))
    row = await _schedule_row(db, schedule_id)
    assert row is not None and row["next_run_at"] > datetime.now(UTC)


async def test_get_schedule_shows_status_next_runs_and_missed_count(db: Database, kafka: KafkaSettings) -> None:
    from hopcast_scheduler.entrypoints.http import routes

    (schedule_id,) = await _seed(db, 1, next_run_at=datetime(2027, 6, 1, 6, 0, tzinfo=UTC), policy="SKIP")
    async with db.transaction() as conn:
        await claim_and_emit(DEPS, conn, kafka, now=datetime(2027, 6, 2, 7, 0, tzinfo=UTC), limit=10)

    class Runtime:
        def __init__(self) -> None:
            self.db = db

    route = routes(Runtime())[0]  # type: ignore[arg-type]
    found = await route.handler({"id": str(schedule_id)}, {})
    assert found.status == 200
    assert found.body["status"] == "ACTIVE" and found.body["missed_runs"] == 5
    assert found.body["next_run_at"] == "2027-06-02T12:00:00Z"
    assert len(found.body["next_run_times"]) == 5 and all(t.endswith("Z") for t in found.body["next_run_times"])
    assert (await route.handler({"id": str(uuid.uuid4())}, {})).status == 404
    with pytest.raises(ValueError, match="schedule id must be a UUID"):  # the router answers 400
        await route.handler({"id": "not-a-uuid"}, {})


async def test_a_paused_schedule_does_not_run_until_resumed(db: Database, database_url: str, stack: Any) -> None:
    from hopcast_shared.consumer import EventConsumer
    from hopcast_shared.testing import as_record

    consumer = EventConsumer(
        "scheduler", db, definition().handlers, kafka=stack.kafka_settings, settings=_settings(database_url)
    )
    tenant = Tenant()
    schedule_id = str(uuid.uuid4())
    for event in (
        tenant.event("OrganizationCreated"),
        tenant.event("BrandProfileCreated", brand_profile_id=tenant.brand),
        tenant.schedule(schedule_id, days_of_week=[0, 1, 2, 3, 4, 5, 6]),
        tenant.event("SchedulePaused", schedule_id=schedule_id),
    ):
        assert await consumer.handle_record(as_record(event)) == "handled"
    await db.pool.execute("UPDATE schedules SET next_run_at = now() - interval '1 minute'")
    async with db.transaction() as conn:
        assert await claim_and_emit(DEPS, conn, stack.kafka_settings, now=datetime.now(UTC), limit=10) == 0
    assert (await _schedule_row(db, schedule_id))["status"] == "PAUSED"
    await consumer.handle_record(as_record(tenant.event("ScheduleResumed", schedule_id=schedule_id)))
    row = await _schedule_row(db, schedule_id)
    assert row["status"] == "ACTIVE" and row["next_run_at"] > datetime.now(UTC)
    # Another organization cannot pause it.
    intruder = Tenant()
    paused_by_other = intruder.event("SchedulePaused", schedule_id=schedule_id)
    assert await consumer.handle_record(as_record(paused_by_other)) == "dead_lettered"
    assert (await _schedule_row(db, schedule_id))["status"] == "ACTIVE"
