"""SQL of a run's life after it fired: the stages the events report (run_stages), its deadline
moved by a reviewer's wait or a platform's deferral, the watch's claim of runs past their
deadline (FOR UPDATE SKIP LOCKED on the open runs' index, so replicas share it safely), and
a run's timeline for GET /runs/{id}.

A run's deadline is `coalesce(deadline_at, start + run deadline)`, its start the later of its
due time and its creation (a catch-up run is not late from birth); no deadline runs while
`approval_wait_since` is set.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from hopcast_shared.db import Conn
from hopcast_shared.outbox import OutboxRow, write_outbox

DEADLINE = "coalesce(r.deadline_at, greatest(r.due_at, r.created_at) + $2::interval)"


@dataclass(frozen=True)
class Stage:
    stage: str
    at: datetime
    platform: str | None = None
    detail: str | None = None
    credits: int | None = None


@dataclass(frozen=True)
class PastDeadline:
    run_id: uuid.UUID
    schedule_id: uuid.UUID
    organization_id: uuid.UUID
    brand_profile_id: uuid.UUID
    due_at: datetime
    deadline: datetime


class RunRepository:
    """A run's stages and deadline in one transaction."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def record_stage(self, run_id: uuid.UUID, org_id: uuid.UUID, stage: Stage) -> bool:
        """The stage of the organization's run; False when the organization has no such run."""
        return not await self.record_stages([(run_id, org_id, stage)])

    async def record_stages(
        self, stages: Sequence[tuple[uuid.UUID, uuid.UUID, Stage]]
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Each (run, organization, stage) in one statement, in the given order; returns the
        (run, organization) pairs of the organization's runs that do not exist, recorded nothing."""
        rows = await self.conn.fetch(
            """
            INSERT INTO run_stages (run_id, organization_id, pending_post_id, stage, at, platform, detail, credits)
            SELECT r.run_id, r.organization_id, r.pending_post_id, s.stage, s.at, s.platform, s.detail, s.credits
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[], $7::int[])
                WITH ORDINALITY AS s(run_id, org, stage, at, platform, detail, credits, n)
            JOIN schedule_runs r ON r.run_id = s.run_id AND r.organization_id = s.org
            ORDER BY s.n
            RETURNING run_id, organization_id
            """,
            [run_id for run_id, _, _ in stages],
            [org for _, org, _ in stages],
            [stage.stage for _, _, stage in stages],
            [stage.at for _, _, stage in stages],
            [stage.platform for _, _, stage in stages],
            [stage.detail for _, _, stage in stages],
            [stage.credits for _, _, stage in stages],
        )
        recorded = {(row["run_id"], row["organization_id"]) for row in rows}
        return list(dict.fromkeys((run_id, org) for run_id, org, _ in stages if (run_id, org) not in recorded))

    async def record_unclaimed(self, pending_post_id: uuid.UUID, org_id: uuid.UUID, stage: Stage) -> None:
        """A reviewer's decision read before its draft: kept for the draft to claim."""
        await self.conn.execute(
            "INSERT INTO run_stages (organization_id, pending_post_id, stage, at, detail) VALUES ($1, $2, $3, $4, $5)",
            org_id,
            pending_post_id,
            stage.stage,
            stage.at,
            stage.detail,
        )

    async def run_of_pending_post(self, pending_post_id: uuid.UUID, org_id: uuid.UUID) -> uuid.UUID | None:
        run_id: uuid.UUID | None = await self.conn.fetchval(
            "SELECT run_id FROM schedule_runs WHERE pending_post_id = $1 AND organization_id = $2",
            pending_post_id,
            org_id,
        )
        return run_id

    async def drafted(
        self, run_id: uuid.UUID, org_id: uuid.UUID, pending_post_id: uuid.UUID, *, requires_approval: bool, at: datetime
    ) -> None:
        """The run's draft: its pending post, the reviewer's decisions read before it claimed,
        and, when it waits for a reviewer who has not decided yet, its deadline stopped."""
        claimed = await self.conn.fetchval(
            """
            WITH claimed AS (
                UPDATE run_stages SET run_id = $1
                WHERE pending_post_id = $3 AND organization_id = $2 AND run_id IS NULL
                RETURNING 1
            )
            SELECT count(*) FROM claimed
            """,
            run_id,
            org_id,
            pending_post_id,
        )
        await self.conn.execute(
            """
            UPDATE schedule_runs SET pending_post_id = $3,
                approval_wait_since = CASE WHEN $4::boolean AND outcome IS NULL THEN $5::timestamptz END
            WHERE run_id = $1 AND organization_id = $2 AND pending_post_id IS NULL
            """,
            run_id,
            org_id,
            pending_post_id,
            requires_approval and not claimed,
            at,
        )

    async def approval_decided(self, run_id: uuid.UUID, at: datetime, run_deadline: timedelta) -> None:
        """The reviewer decided: the deadline runs again, moved on by the time waited."""
        await self.conn.execute(
            f"""
            UPDATE schedule_runs r
            SET deadline_at = {DEADLINE} + greatest($3::timestamptz - r.approval_wait_since, interval '0'),
                approval_wait_since = NULL
            WHERE r.run_id = $1 AND r.approval_wait_since IS NOT NULL
            """,
            run_id,
            run_deadline,
            at,
        )

    async def deferred_until(self, run_id: uuid.UUID, retry_at: datetime, run_deadline: timedelta) -> None:
        """A platform put the run off until `retry_at`: its deadline is at least a run deadline after."""
        await self.conn.execute(
            f"UPDATE schedule_runs r SET deadline_at = greatest({DEADLINE}, $3::timestamptz + $2::interval)"
            " WHERE r.run_id = $1",
            run_id,
            run_deadline,
            retry_at,
        )

    async def claim_past_deadline(self, now: datetime, run_deadline: timedelta, limit: int) -> list[PastDeadline]:
        """Open runs past their deadline that were not told yet, marked told in this
        transaction; a run another replica holds is skipped."""
        rows = await self.conn.fetch(
            f"""
            WITH due AS (
                SELECT r.run_id, {DEADLINE} AS deadline FROM schedule_runs r
                WHERE r.outcome IS NULL AND r.deadline_passed_at IS NULL AND r.approval_wait_since IS NULL
                  AND {DEADLINE} <= $1
                ORDER BY r.created_at
                LIMIT $3
                FOR UPDATE OF r SKIP LOCKED
            )
            UPDATE schedule_runs r SET deadline_passed_at = $1
            FROM due, schedules s
            WHERE r.run_id = due.run_id AND s.id = r.schedule_id
            RETURNING r.run_id, r.schedule_id, r.organization_id, s.brand_profile_id, r.due_at, due.deadline
            """,
            now,
            run_deadline,
            limit,
        )
        return [PastDeadline(**dict(row)) for row in rows]

    async def write_outbox(self, rows: Sequence[OutboxRow]) -> None:
        await write_outbox(self.conn, rows)


async def open_past_deadline(conn: Conn, now: datetime, run_deadline: timedelta) -> tuple[int, int]:
    """Open runs (not waiting for a reviewer) past their deadline, and past twice it."""
    row = await conn.fetchrow(
        f"""
        SELECT count(*) FILTER (WHERE {DEADLINE} <= $1) AS past,
               count(*) FILTER (WHERE {DEADLINE} + $2::interval <= $1) AS twice
        FROM schedule_runs r WHERE r.outcome IS NULL AND r.approval_wait_since IS NULL
        """,
        now,
        run_deadline,
    )
    assert row is not None  # an aggregate always has its row
    return int(row["past"]), int(row["twice"])


async def timeline(conn: Conn, run_id: uuid.UUID, run_deadline: timedelta) -> tuple[dict[str, Any], list[Stage]] | None:
    """The run (with its deadline and brand) and its stages in time order; None when unknown."""
    run: asyncpg.Record | None = await conn.fetchrow(
        f"""
        SELECT r.*, s.brand_profile_id, {DEADLINE} AS deadline
        FROM schedule_runs r JOIN schedules s ON s.id = r.schedule_id WHERE r.run_id = $1
        """,
        run_id,
        run_deadline,
    )
    if run is None:
        return None
    stages = await conn.fetch(
        "SELECT stage, at, platform, detail, credits FROM run_stages WHERE run_id = $1 ORDER BY at, id", run_id
    )
    return dict(run), [Stage(**dict(s)) for s in stages]
