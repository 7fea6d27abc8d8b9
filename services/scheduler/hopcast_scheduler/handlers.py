"""The scheduler's service layer: each inbound event loads, decides and writes in the
consumer's transaction; `claim_and_emit` fires due schedules.

Every ScheduleDue starts a run: it gets a fresh run_id (the saga's correlation id) and a
trace of its own, and is written to the outbox in the transaction that records the run.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import asyncpg
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from hopcast_scheduler import metrics
from hopcast_scheduler.adapters import repository as repo
from hopcast_scheduler.domain.due import MISSED_AFTER, MissedRunPolicy, plan_due
from hopcast_scheduler.domain.recurrence import Recurrence, next_run
from hopcast_scheduler.domain.rules import ScheduleStatus, schedule_problems, status_after_outcome
from hopcast_shared import projections
from hopcast_shared.consumer import EventContext, Handler, PermanentError
from hopcast_shared.contract import (
    BrandProfileCreated,
    BrandProfileDeleted,
    BrandProfileRestored,
    BrandProfileUpdated,
    MaterialSubmitted,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationRestored,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleDue,
    SchedulePaused,
    ScheduleResumed,
    ScheduleRunCompleted,
    ScheduleTriggerRequested,
    ScheduleUpdated,
)
from hopcast_shared.db import Conn
from hopcast_shared.outbox import OutboxRow, event_rows, write_outbox
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import inject_headers, tracer

log = logging.getLogger(__name__)
SOURCE = "hopcast/scheduler"


def _value(item: Any) -> Any:
    return item.value if isinstance(item, Enum) else item


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- organizations and brands (the local projection) -------------------------------------


async def organization_created(ctx: EventContext, data: OrganizationCreated) -> None:
    await projections.upsert_organization(ctx.conn, data.organization_id, data.name)


async def organization_deleted(ctx: EventContext, data: OrganizationDeleted) -> None:
    await projections.set_organization_deleted(ctx.conn, data.organization_id, True)


async def organization_restored(ctx: EventContext, data: OrganizationRestored) -> None:
    await projections.set_organization_deleted(ctx.conn, data.organization_id, False)
    # Runs that fell due while it was deleted are not owed: start again from now.
    await _reschedule_from_now(
        ctx.conn, await repo.schedules_to_reschedule(ctx.conn, organization_id=data.organization_id)
    )


async def brand_upserted(ctx: EventContext, data: BrandProfileCreated | BrandProfileUpdated) -> None:
    ok = await repo.upsert_brand(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, data.name, data.timezone)
    if not ok:
        raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")


async def _set_brand_deleted(ctx: EventContext, brand_id: uuid.UUID, deleted: bool) -> bool:
    """Soft delete or restore the organization's brand; False when no organization has it (it
    may come later); refused when another organization has it."""
    org = ctx.envelope.organizationid
    if await projections.set_brand_deleted(ctx.conn, brand_id, org, deleted):
        return True
    if await projections.owned_by_another(ctx.conn, "brands", brand_id, org):
        raise PermanentError(f"brand {brand_id} belongs to another organization")
    return False


async def brand_deleted(ctx: EventContext, data: BrandProfileDeleted) -> None:
    await _set_brand_deleted(ctx, data.brand_profile_id, True)


async def brand_restored(ctx: EventContext, data: BrandProfileRestored) -> None:
    if await _set_brand_deleted(ctx, data.brand_profile_id, False):
        await _reschedule_from_now(
            ctx.conn,
            await repo.schedules_to_reschedule(
                ctx.conn, organization_id=ctx.envelope.organizationid, brand_id=data.brand_profile_id
            ),
        )


async def _reschedule_from_now(conn: Conn, rows: list[asyncpg.Record]) -> None:
    now = now_utc()
    for row in rows:
        await repo.update_schedule(conn, row["id"], next_run_at=next_run(repo.recurrence_of(row), now))


# --- schedules -------------------------------------------------------------------------------


async def schedule_upserted(ctx: EventContext, data: ScheduleCreated | ScheduleUpdated) -> None:
    org = ctx.envelope.organizationid
    times = list(data.times)
    days = [int(d) for d in data.days_of_week]
    problems = schedule_problems(times, days)
    brand = await repo.brand_of(ctx.conn, data.brand_profile_id)
    if brand is None:
        problems.append(f"unknown brand_profile_id {data.brand_profile_id} for this organization")
    elif brand["organization_id"] != org:
        problems.append(f"brand {data.brand_profile_id} belongs to another organization")
    existing = await repo.schedule(ctx.conn, data.schedule_id, lock=True)
    if existing is not None and existing["organization_id"] != org:
        problems.append(f"schedule {data.schedule_id} belongs to another organization")
    if problems:
        raise PermanentError("invalid schedule: " + "; ".join(problems))
    rule = Recurrence.parse(data.timezone, times, days)
    await repo.upsert_schedule(
        ctx.conn,
        {
            "id": data.schedule_id,
            "organization_id": org,
            "brand_profile_id": data.brand_profile_id,
            "timezone": data.timezone,
            "times": sorted(set(times)),
            "days_of_week": sorted(set(days)),
            "platforms": [_value(p) for p in data.platforms],
            "material_strategy": _value(data.material_strategy),
            "generation_mode": _value(data.generation_mode),
            "missed_run_policy": _value(data.missed_run_policy),
            "is_active": data.is_active,
            "next_run_at": next_run(rule, now_utc()),
        },
    )


async def _owned_schedule(ctx: EventContext, schedule_id: uuid.UUID) -> asyncpg.Record:
    return _owned(ctx, schedule_id, await repo.schedule(ctx.conn, schedule_id, lock=True))


def _owned(ctx: EventContext, schedule_id: uuid.UUID, row: asyncpg.Record | None) -> asyncpg.Record:
    """The schedule row, when it is the event's organization's; PermanentError otherwise."""
    if row is None:
        raise PermanentError(f"unknown schedule {schedule_id} for this organization")
    if row["organization_id"] != ctx.envelope.organizationid:
        raise PermanentError(f"schedule {schedule_id} belongs to another organization")
    return row


async def schedule_paused(ctx: EventContext, data: SchedulePaused) -> None:
    await _owned_schedule(ctx, data.schedule_id)
    await repo.update_schedule(ctx.conn, data.schedule_id, status=ScheduleStatus.PAUSED.value)


async def schedule_resumed(ctx: EventContext, data: ScheduleResumed) -> None:
    row = await _owned_schedule(ctx, data.schedule_id)
    await repo.update_schedule(
        ctx.conn,
        data.schedule_id,
        status=ScheduleStatus.ACTIVE.value,
        consecutive_errors=0,
        next_run_at=next_run(repo.recurrence_of(row), now_utc()),
    )


async def schedule_deleted(ctx: EventContext, data: ScheduleDeleted) -> None:
    row = await _owned_schedule(ctx, data.schedule_id)
    if row["deleted_at"] is None:
        await repo.update_schedule(ctx.conn, data.schedule_id, deleted_at=now_utc())


async def material_submitted(ctx: EventContext, data: MaterialSubmitted) -> None:
    """A new material lifts EXHAUSTED from the brand's schedules (another organization's
    brand is refused: its schedules are not this organization's to wake)."""
    org = ctx.envelope.organizationid
    if await projections.owned_by_another(ctx.conn, "brands", data.brand_profile_id, org):
        raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
    for row in await repo.schedules_to_reschedule(ctx.conn, organization_id=org, brand_id=data.brand_profile_id):
        if row["status"] == ScheduleStatus.EXHAUSTED.value:
            await repo.update_schedule(
                ctx.conn,
                row["id"],
                status=ScheduleStatus.ACTIVE.value,
                next_run_at=next_run(repo.recurrence_of(row), now_utc()),
            )


async def trigger_requested(ctx: EventContext, data: ScheduleTriggerRequested) -> None:
    """Post now: one run at once. The inbox makes it once per trigger event; the run row's
    unique trigger_event_id makes it once even if the inbox were bypassed."""
    row = _owned(ctx, data.schedule_id, await repo.trigger_target(ctx.conn, data.schedule_id))
    if row["deleted_at"] is not None:
        log.info("trigger for deleted schedule %s ignored", data.schedule_id)
        return
    if not row["active"]:
        log.info("trigger for schedule %s of an inactive brand or organization ignored", data.schedule_id)
        return
    run_id = uuid.uuid4()
    due_at = now_utc()
    if await repo.insert_trigger_run(ctx.conn, run_id, row, due_at, ctx.envelope.id):
        await ctx.emit(_schedule_due(row, run_id, due_at), correlation_id=str(run_id))


# --- outcomes --------------------------------------------------------------------------------


async def run_completed(ctx: EventContext, data: ScheduleRunCompleted) -> None:
    outcome = _value(data.outcome)
    org = ctx.envelope.organizationid
    row = await repo.complete_run(ctx.conn, data.run_id, org, outcome, data.completed_at)
    if row is None:
        if await repo.run_owned_by_another(ctx.conn, data.run_id, org):
            # Never ends, nor counts against the schedule of, another organization's run.
            raise PermanentError(f"run {data.run_id} belongs to another organization")
        return  # not one of ours, or already recorded
    status, streak = status_after_outcome(ScheduleStatus(row["status"]), row["consecutive_errors"], outcome)
    await repo.update_schedule(
        ctx.conn, row["id"], status=status.value, consecutive_errors=streak, last_outcome=outcome
    )
    if status is not ScheduleStatus(row["status"]):
        log.info("schedule %s is now %s after %s", row["id"], status.value, outcome)


HANDLERS: dict[str, Handler] = {
    "OrganizationCreated": organization_created,
    "OrganizationDeleted": organization_deleted,
    "OrganizationRestored": organization_restored,
    "BrandProfileCreated": brand_upserted,
    "BrandProfileUpdated": brand_upserted,
    "BrandProfileDeleted": brand_deleted,
    "BrandProfileRestored": brand_restored,
    "ScheduleCreated": schedule_upserted,
    "ScheduleUpdated": schedule_upserted,
    "SchedulePaused": schedule_paused,
    "ScheduleResumed": schedule_resumed,
    "ScheduleDeleted": schedule_deleted,
    "ScheduleTriggerRequested": trigger_requested,
    "MaterialSubmitted": material_submitted,
    "ScheduleRunCompleted": run_completed,
}


# --- claiming due schedules ------------------------------------------------------------------


def _schedule_due(row: asyncpg.Record, run_id: uuid.UUID, due_at: datetime) -> ScheduleDue:
    return ScheduleDue(
        run_id=run_id,
        schedule_id=row["id"],
        brand_profile_id=row["brand_profile_id"],
        due_at=due_at,
        platforms=list(row["platforms"]),
        target_pillar=None,
    )


async def claim_and_emit(conn: Conn, kafka: KafkaSettings, *, now: datetime, limit: int) -> int:
    """In the caller's transaction: claim due schedules, record their runs, write their
    ScheduleDue events to the outbox and advance next_run_at. Returns the runs fired."""
    claimed = await repo.claim_due_schedules(conn, now, limit)
    if not claimed:
        return 0
    planned: list[tuple[asyncpg.Record, uuid.UUID, datetime, str]] = []
    updates = []
    for row in claimed:
        plan = plan_due(repo.recurrence_of(row), row["next_run_at"], now, MissedRunPolicy(row["missed_run_policy"]))
        if plan.missed:
            metrics.MISSED_RUNS.labels(row["missed_run_policy"]).inc(plan.missed)
            log.warning(
                "schedule %s missed %d run(s); policy %s fires %d",
                row["id"],
                plan.missed,
                row["missed_run_policy"],
                len(plan.fire),
            )
        for due_at in plan.fire:
            kind = "SCHEDULED" if now - due_at <= MISSED_AFTER else "CATCH_UP"
            planned.append((row, uuid.uuid4(), due_at, kind))
        updates.append((row["id"], plan.next_run_at, plan.missed, plan.fire[-1] if plan.fire else None))
    inserted = await repo.insert_runs(
        conn,
        [(run_id, row["id"], row["organization_id"], due_at, kind) for row, run_id, due_at, kind in planned],
    )
    rows: list[OutboxRow] = []
    for row, run_id, due_at, _kind in planned:
        if run_id not in inserted:
            continue
        # Each run is the root of its own trace: everything the saga does joins it.
        with tracer.start_as_current_span(
            "schedule run",
            context=Context(),
            kind=SpanKind.PRODUCER,
            attributes={"hopcast.run_id": str(run_id)},
        ):
            trace = inject_headers()
        rows += event_rows(
            kafka,
            [_schedule_due(row, run_id, due_at)],
            organization_id=row["organization_id"],
            source=SOURCE,
            correlation_id=str(run_id),
            causation_id=None,
            trace=trace,
        )
    await write_outbox(conn, rows)
    await repo.advance_schedules(conn, updates)
    metrics.RUNS_FIRED.inc(len(rows))
    return len(rows)
