"""The scheduler's purge on the real database: what was soft-deleted longer ago than the
retention is gone with everything under it; recent soft deletes and live data are kept."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_scheduler.adapters.repository import PURGE_RUN_STAGES, purge
from hopcast_scheduler.bootstrap import MIGRATIONS
from hopcast_scheduler.service_layer.handlers import SchedulerDeps, claim_and_emit
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
LONG_AGO = NOW - timedelta(days=40)
LATELY = NOW - timedelta(days=5)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("scheduler", MIGRATIONS))
    yield database
    await database.close()


class Seed:
    """Rows straight into the scheduler's tables, with the deletion times a test needs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def org(self, deleted_at: datetime | None = None) -> uuid.UUID:
        org = uuid.uuid4()
        await self.db.pool.execute(
            "INSERT INTO organizations (id, name, deleted_at) VALUES ($1, 'o', $2)", org, deleted_at
        )
        return org

    async def brand(self, org: uuid.UUID, deleted_at: datetime | None = None) -> uuid.UUID:
        brand = uuid.uuid4()
        await self.db.pool.execute(
            "INSERT INTO brands (id, organization_id, name, timezone, deleted_at) VALUES ($1, $2, 'b', 'UTC', $3)",
            brand,
            org,
            deleted_at,
        )
        return brand

    async def schedule(
        self, org: uuid.UUID, brand: uuid.UUID, deleted_at: datetime | None = None, next_run_at: datetime = NOW
    ) -> uuid.UUID:
        schedule = uuid.uuid4()
        await self.db.pool.execute(
            """
            INSERT INTO schedules (id, organization_id, brand_profile_id, timezone, times, days_of_week, platforms,
                material_strategy, generation_mode, missed_run_policy, is_active, next_run_at, deleted_at)
            VALUES ($1, $2, $3, 'UTC', ARRAY['09:00'], ARRAY[0,1,2,3,4,5,6]::smallint[], ARRAY['TWITTER'],
                'round_robin', 'autopilot', 'ONCE', true, $4, $5)
            """,
            schedule,
            org,
            brand,
            next_run_at,
            deleted_at,
        )
        return schedule

    async def run(self, schedule: uuid.UUID, org: uuid.UUID, completed_at: datetime | None = None) -> uuid.UUID:
        run = uuid.uuid4()
        await self.db.pool.execute(
            """
            INSERT INTO schedule_runs (run_id, schedule_id, organization_id, due_at, kind, outcome, completed_at)
            VALUES ($1, $2, $3, $4, 'SCHEDULED', CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE 'PUBLISHED' END, $5)
            """,
            run,
            schedule,
            org,
            (completed_at or NOW) - timedelta(minutes=uuid.uuid4().int % 100_000),
            completed_at,
        )
        return run

    async def stage(self, org: uuid.UUID, run: uuid.UUID | None, at: datetime) -> int:
        """A stage of `run` (None: one no run has claimed yet, as a late event leaves it)."""
        return int(
            await self.db.pool.fetchval(
                """INSERT INTO run_stages (run_id, organization_id, pending_post_id, stage, at)
                   VALUES ($1, $2, $3, 'PUBLISHED', $4) RETURNING id""",
                run,
                org,
                uuid.uuid4(),
                at,
            )
        )


async def _ids(db: Database, table: str, column: str = "id") -> set[Any]:
    return {r[0] for r in await db.pool.fetch(f"SELECT {column} FROM {table}")}


async def test_purge_deletes_what_was_soft_deleted_longer_ago_than_the_retention(
    db: Database, kafka: KafkaSettings
) -> None:
    seed = Seed(db)
    # An organization deleted long ago: everything of it goes.
    old_org = await seed.org(LONG_AGO)
    old_org_brand = await seed.brand(old_org)
    old_org_schedule = await seed.schedule(old_org, old_org_brand)
    await seed.run(old_org_schedule, old_org, LATELY)
    # One deleted lately: kept, whole.
    recent_org = await seed.org(LATELY)
    recent_org_brand = await seed.brand(recent_org)
    recent_org_schedule = await seed.schedule(recent_org, recent_org_brand)
    recent_org_run = await seed.run(recent_org_schedule, recent_org)
    # A live one with a brand and a schedule deleted long ago, one deleted lately, and live ones.
    live = await seed.org()
    old_brand = await seed.brand(live, LONG_AGO)
    old_brand_schedule = await seed.schedule(live, old_brand)
    await seed.run(old_brand_schedule, live)
    brand = await seed.brand(live)
    recent_brand = await seed.brand(live, LATELY)
    old_schedule = await seed.schedule(live, brand, LONG_AGO)
    await seed.run(old_schedule, live, LATELY)
    recent_schedule = await seed.schedule(live, recent_brand, LATELY)
    schedule = await seed.schedule(live, brand, next_run_at=NOW + timedelta(hours=1))
    ended_long_ago = await seed.run(schedule, live, LONG_AGO)
    ended_lately = await seed.run(schedule, live, LATELY)
    still_open = await seed.run(schedule, live)

    async with db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts == {"run_stages": 0, "schedule_runs": 4, "schedules": 3, "brands": 2, "organizations": 1}
    assert await _ids(db, "organizations") == {recent_org, live}
    assert await _ids(db, "brands") == {recent_org_brand, brand, recent_brand}
    assert await _ids(db, "schedules") == {recent_org_schedule, recent_schedule, schedule}
    assert await _ids(db, "schedule_runs", "run_id") == {recent_org_run, ended_lately, still_open}
    assert ended_long_ago not in await _ids(db, "schedule_runs", "run_id")

    # Nothing is left to purge, and the live schedule still fires.
    async with db.transaction() as conn:
        assert set((await purge(conn, 30)).values()) == {0}
    async with db.transaction() as conn:
        assert (
            await claim_and_emit(SchedulerDeps(), conn, kafka, now=NOW + timedelta(hours=1, seconds=1), limit=10) == 1
        )
    assert await db.pool.fetchval("SELECT count(*) FROM schedule_runs WHERE schedule_id = $1", schedule) == 3


async def test_a_shorter_retention_purges_what_was_deleted_lately(db: Database) -> None:
    seed = Seed(db)
    org = await seed.org(LATELY)
    await seed.schedule(org, await seed.brand(org))
    async with db.transaction() as conn:
        assert (await purge(conn, 30))["organizations"] == 0
    async with db.transaction() as conn:
        assert await purge(conn, 1) == {
            "run_stages": 0,
            "schedule_runs": 0,
            "schedules": 1,
            "brands": 1,
            "organizations": 1,
        }
    assert await _ids(db, "organizations") == set()


async def test_a_purged_run_takes_its_stages_with_it_and_old_unclaimed_stages_go(db: Database) -> None:
    seed = Seed(db)
    org = await seed.org()
    old_schedule = await seed.schedule(org, await seed.brand(org), LONG_AGO)
    schedule = await seed.schedule(org, await seed.brand(org))
    ended_long_ago = await seed.run(schedule, org, LONG_AGO)
    of_old_schedule = await seed.run(old_schedule, org, LATELY)
    ended_lately = await seed.run(schedule, org, LATELY)
    for run in (ended_long_ago, of_old_schedule):
        await seed.stage(org, run, LONG_AGO)
        await seed.stage(org, run, LATELY)
    kept = {await seed.stage(org, ended_lately, LONG_AGO), await seed.stage(org, None, LATELY)}
    await seed.stage(org, None, LONG_AGO)

    async with db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts["run_stages"] == 5 and counts["schedule_runs"] == 2
    assert await _ids(db, "run_stages") == kept


async def test_the_stages_of_purged_runs_are_found_by_a_join_whatever_work_mem(db: Database) -> None:
    """Not `run_id IN (SELECT ...) OR ...`: past work_mem that is a subplan searched for every
    stage row, quadratic in a day's runs (bench: 667,000 runs did not finish in 20 minutes)."""
    async with db.transaction() as conn:
        await conn.execute("SET LOCAL work_mem = '64kB'")
        plan = "\n".join(
            r[0] for r in await conn.fetch(f"EXPLAIN {PURGE_RUN_STAGES}", 30, [uuid.uuid4() for _ in range(3)])
        )
    # A join node, whichever the planner picks for the tables' statistics.
    assert "SubPlan" not in plan and any(node in plan for node in ("Hash Join", "Merge Join", "Nested Loop"))
