"""SQL of the scheduler: projections, schedules, runs, and the claim of due schedules.

The claim is one statement that locks due schedules with FOR UPDATE SKIP LOCKED, so any
number of replicas can tick at once: a locked schedule is skipped, not waited for, and the
run row's unique (schedule_id, due_at) makes a second firing impossible.

`ScheduleRepository` is what the service layer uses, bound to one transaction; unit tests
subclass it with an in-memory fake. `due_backlog` and `purge` serve the tick loop and the
operators.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

import asyncpg

from hopcast_scheduler.domain.schedules import Schedule
from hopcast_shared import projections
from hopcast_shared.db import Conn
from hopcast_shared.outbox import OutboxRow, write_outbox

CLAIM_DUE = """
SELECT s.* FROM schedules s
JOIN brands b ON b.id = s.brand_profile_id AND b.deleted_at IS NULL
LEFT JOIN organizations o ON o.id = s.organization_id
WHERE s.next_run_at <= $1 AND s.status = 'ACTIVE' AND s.is_active AND s.deleted_at IS NULL
  AND o.deleted_at IS NULL
ORDER BY s.next_run_at
LIMIT $2
FOR UPDATE OF s SKIP LOCKED
"""


_SCHEDULE_COLUMNS = tuple(f.name for f in fields(Schedule))


def schedule_of(row: asyncpg.Record) -> Schedule:
    """A schedules row (any extra columns aside) as the domain's Schedule, arrays as tuples."""
    values: dict[str, Any] = {name: row[name] for name in _SCHEDULE_COLUMNS}
    for array in ("times", "days_of_week", "platforms"):
        values[array] = tuple(values[array])
    return Schedule(**values)


class ScheduleRepository:
    """The scheduler's state in one transaction: brands, schedules, runs and its outbox."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    # --- brands ------------------------------------------------------------------------------

    async def brand_owner(self, brand_id: uuid.UUID) -> uuid.UUID | None:
        """The organization the brand belongs to; None when no organization has it (yet)."""
        owner: uuid.UUID | None = await self.conn.fetchval("SELECT organization_id FROM brands WHERE id = $1", brand_id)
        return owner

    # --- schedules ---------------------------------------------------------------------------

    async def schedule(self, schedule_id: uuid.UUID, *, lock: bool = False) -> Schedule | None:
        row = await self.conn.fetchrow(
            "SELECT * FROM schedules WHERE id = $1" + (" FOR UPDATE" if lock else ""), schedule_id
        )
        return None if row is None else schedule_of(row)

    async def trigger_target(self, schedule_id: uuid.UUID) -> tuple[Schedule, bool] | None:
        """The schedule, locked, with whether its brand and organization are live (the
        schedule's own deleted_at apart). One statement: a trigger's reads in one round trip."""
        row = await self.conn.fetchrow(
            """
            SELECT s.*, (b.id IS NOT NULL AND b.deleted_at IS NULL AND o.deleted_at IS NULL) AS active
            FROM schedules s
            LEFT JOIN brands b ON b.id = s.brand_profile_id
            LEFT JOIN organizations o ON o.id = s.organization_id
            WHERE s.id = $1
            FOR UPDATE OF s
            """,
            schedule_id,
        )
        return None if row is None else (schedule_of(row), bool(row["active"]))

    async def upsert_schedule(self, values: dict[str, Any]) -> None:
        await self.conn.execute(
            """
            INSERT INTO schedules (id, organization_id, brand_profile_id, timezone, times, days_of_week, platforms,
                                   material_strategy, generation_mode, missed_run_policy, is_active, next_run_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (id) DO UPDATE SET
                brand_profile_id = EXCLUDED.brand_profile_id, timezone = EXCLUDED.timezone, times = EXCLUDED.times,
                days_of_week = EXCLUDED.days_of_week, platforms = EXCLUDED.platforms,
                material_strategy = EXCLUDED.material_strategy, generation_mode = EXCLUDED.generation_mode,
                missed_run_policy = EXCLUDED.missed_run_policy, is_active = EXCLUDED.is_active,
                next_run_at = EXCLUDED.next_run_at, updated_at = now()
            """,
            values["id"],
            values["organization_id"],
            values["brand_profile_id"],
            values["timezone"],
            values["times"],
            values["days_of_week"],
            values["platforms"],
            values["material_strategy"],
            values["generation_mode"],
            values["missed_run_policy"],
            values["is_active"],
            values["next_run_at"],
        )

    async def update_schedule(self, schedule_id: uuid.UUID, **fields: Any) -> None:
        names = list(fields)
        assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
        await self.conn.execute(
            f"UPDATE schedules SET {assignments}, updated_at = now() WHERE id = $1",
            schedule_id,
            *(fields[n] for n in names),
        )

    async def schedules_to_reschedule(
        self, *, organization_id: uuid.UUID | None = None, brand_id: uuid.UUID | None = None
    ) -> list[Schedule]:
        """Live schedules of an organization or a brand, locked, to recompute their next run."""
        rows = await self.conn.fetch(
            """
            SELECT * FROM schedules
            WHERE deleted_at IS NULL
              AND ($1::uuid IS NULL OR organization_id = $1) AND ($2::uuid IS NULL OR brand_profile_id = $2)
            FOR UPDATE
            """,
            organization_id,
            brand_id,
        )
        return [schedule_of(r) for r in rows]

    # --- claiming due schedules and their runs -----------------------------------------------

    async def claim_due_schedules(self, now: datetime, limit: int) -> list[Schedule]:
        """Lock up to `limit` due schedules no other replica holds (in this transaction)."""
        return [schedule_of(r) for r in await self.conn.fetch(CLAIM_DUE, now, limit)]

    async def insert_runs(
        self, runs: Sequence[tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime, str]]
    ) -> set[uuid.UUID]:
        """Insert (run_id, schedule_id, organization_id, due_at, kind) rows; returns the run ids
        inserted (a run for the same schedule and due time that already exists is not fired again)."""
        if not runs:
            return set()
        rows = await self.conn.fetch(
            """
            INSERT INTO schedule_runs (run_id, schedule_id, organization_id, due_at, kind)
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::text[])
            ON CONFLICT (schedule_id, due_at) DO NOTHING
            RETURNING run_id
            """,
            [r[0] for r in runs],
            [r[1] for r in runs],
            [r[2] for r in runs],
            [r[3] for r in runs],
            [r[4] for r in runs],
        )
        return {r["run_id"] for r in rows}

    async def advance_schedules(
        self, updates: Sequence[tuple[uuid.UUID, datetime | None, int, datetime | None]]
    ) -> None:
        """Set (schedule_id, next_run_at, missed runs to add, last_run_at) for claimed schedules."""
        if not updates:
            return
        await self.conn.execute(
            """
            UPDATE schedules s SET next_run_at = u.next_run_at, missed_runs = s.missed_runs + u.missed,
                last_run_at = coalesce(u.last_run_at, s.last_run_at), updated_at = now()
            FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::timestamptz[])
                AS u(id, next_run_at, missed, last_run_at)
            WHERE s.id = u.id
            """,
            [u[0] for u in updates],
            [u[1] for u in updates],
            [u[2] for u in updates],
            [u[3] for u in updates],
        )

    async def write_outbox(self, rows: Sequence[OutboxRow]) -> None:
        """The runs' ScheduleDue events, published by the relay once this transaction commits."""
        await write_outbox(self.conn, rows)

    async def insert_trigger_run(
        self, run_id: uuid.UUID, schedule: Schedule, due_at: datetime, trigger_event_id: uuid.UUID
    ) -> bool:
        """A "post now" run, once per trigger event of the organization."""
        status = await self.conn.execute(
            """
            INSERT INTO schedule_runs (run_id, schedule_id, organization_id, due_at, kind, trigger_event_id)
            VALUES ($1, $2, $3, $4, 'TRIGGER', $5)
            ON CONFLICT DO NOTHING
            """,
            run_id,
            schedule.id,
            schedule.organization_id,
            due_at,
            trigger_event_id,
        )
        return bool(status == "INSERT 0 1")

    async def complete_run(
        self, run_id: uuid.UUID, org_id: uuid.UUID, outcome: str, completed_at: datetime
    ) -> Schedule | None:
        """Record the outcome of the organization's run once; returns the run's schedule, locked,
        or None when the organization has no such run, it is already completed (or its schedule
        is gone). One statement."""
        row = await self.conn.fetchrow(
            """
            WITH done AS (
                UPDATE schedule_runs SET outcome = $3, completed_at = $4
                WHERE run_id = $1 AND organization_id = $2 AND outcome IS NULL
                RETURNING schedule_id
            )
            SELECT s.* FROM schedules s WHERE s.id = (SELECT schedule_id FROM done) FOR UPDATE
            """,
            run_id,
            org_id,
            outcome,
            completed_at,
        )
        return None if row is None else schedule_of(row)

    async def run_owned_by_another(self, run_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT true FROM schedule_runs WHERE run_id = $1 AND organization_id <> $2", run_id, org_id
            )
        )


async def due_backlog(conn: Conn, now: datetime) -> int:
    return int(
        await conn.fetchval(
            """
            SELECT count(*) FROM schedules s
            JOIN brands b ON b.id = s.brand_profile_id AND b.deleted_at IS NULL
            LEFT JOIN organizations o ON o.id = s.organization_id
            WHERE s.next_run_at <= $1 AND s.status = 'ACTIVE' AND s.is_active AND s.deleted_at IS NULL
              AND o.deleted_at IS NULL
            """,
            now,
        )
    )


# --- retention -------------------------------------------------------------------------------


# The stages of the runs a purge deletes, as a join. Written `run_id IN (SELECT ...) OR ...`
# it was a subplan searched once per stage row as soon as the runs outgrew work_mem: quadratic
# (a day's runs at scale; 667,000 runs and their 3.3 M stages of 5 M did not finish in 20
# minutes, against 6.1 s joined).
PURGE_RUN_STAGES = """
DELETE FROM run_stages s USING schedule_runs r
WHERE s.run_id = r.run_id
  AND (r.schedule_id = ANY($2::uuid[]) OR r.completed_at < now() - make_interval(days => $1))
"""


async def purge(conn: Conn, older_than_days: int) -> dict[str, int]:
    """Delete for good what was soft-deleted more than `older_than_days` ago: organizations with
    their brands, schedules and runs; brands with their schedules and runs; schedules with
    their runs; and runs that ended longer ago than that (a past due time never fires again:
    next_run_at has moved on), each with its stages (and a reviewer's decision no draft claimed).

    The organizations and brands are locked first (projections.lock_purgeable)."""
    cutoff = "now() - make_interval(days => $1)"
    orgs, brands = await projections.lock_purgeable(conn, older_than_days)
    schedules = [
        r["id"]
        for r in await conn.fetch(
            f"""SELECT id FROM schedules
                WHERE deleted_at < {cutoff} OR brand_profile_id = ANY($2::uuid[]) OR organization_id = ANY($3::uuid[])
                ORDER BY id FOR UPDATE""",
            older_than_days,
            brands,
            orgs,
        )
    ]
    counts: dict[str, int] = {}

    async def delete(table: str, sql: str, *args: object) -> None:
        status = await conn.execute(sql, *args)
        counts[table] = counts.get(table, 0) + int(status.split()[-1])

    # Children first: a run's stages, runs reference schedules, schedules reference brands.
    await delete("run_stages", PURGE_RUN_STAGES, older_than_days, schedules)
    await delete("run_stages", f"DELETE FROM run_stages WHERE run_id IS NULL AND at < {cutoff}", older_than_days)
    await delete(
        "schedule_runs",
        f"DELETE FROM schedule_runs WHERE schedule_id = ANY($2::uuid[]) OR completed_at < {cutoff}",
        older_than_days,
        schedules,
    )
    await delete("schedules", "DELETE FROM schedules WHERE id = ANY($1::uuid[])", schedules)
    await delete("brands", "DELETE FROM brands WHERE id = ANY($1::uuid[])", brands)
    await delete("organizations", "DELETE FROM organizations WHERE id = ANY($1::uuid[])", orgs)
    return counts
