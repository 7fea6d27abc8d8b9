"""The scheduler's service layer: each inbound event loads, decides and writes in the
consumer's transaction through `deps.repository` (adapters/repository.py); `claim_and_emit`
fires due schedules, called by the tick loop (entrypoints/tick.py). `DISPATCH` says which
event each handler takes.

Every ScheduleDue starts a run: it gets a fresh run_id (the saga's correlation id) and a
trace of its own, and is written to the outbox in the transaction that records the run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, cast

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from hopcast_scheduler import metrics
from hopcast_scheduler.adapters.repository import ScheduleRepository
from hopcast_scheduler.adapters.runs import RunRepository, Stage
from hopcast_scheduler.domain.due import MISSED_AFTER, MissedRunPolicy, plan_due
from hopcast_scheduler.domain.recurrence import Recurrence, next_run
from hopcast_scheduler.domain.rules import ScheduleStatus, schedule_problems, status_after_outcome
from hopcast_scheduler.domain.schedules import Schedule
from hopcast_shared import projections
from hopcast_shared.contract import (
    BrandProfileRestored,
    MaterialSubmitted,
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
from hopcast_shared.dispatch import Dispatch
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.outbox import OutboxRow, event_rows
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import inject_headers, messaging_attributes, tracer
from hopcast_shared.tenants import tenant_dispatch
from hopcast_shared.topics import SCHEDULER

log = logging.getLogger(__name__)
SOURCE = "hopcast/scheduler"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SchedulerDeps:
    """What the scheduler's handlers need besides the event: built in bootstrap.py."""

    # The scheduler's state in the event's transaction; unit tests give an in-memory fake.
    repository: Callable[[Conn], ScheduleRepository] = ScheduleRepository
    clock: Callable[[], datetime] = now_utc
    # A run's stages and deadline (adapters/runs.py), and how long a run may stay open.
    runs: Callable[[Conn], RunRepository] = RunRepository
    run_deadline: timedelta = timedelta(hours=1)


def _value(item: Any) -> Any:
    return item.value if isinstance(item, Enum) else item


# --- organizations and brands: the kernel's projection, then rescheduling -------------------


async def reschedule_organization(deps: SchedulerDeps, ctx: EventContext, data: OrganizationRestored) -> None:
    """Runs that fell due while the organization was deleted are not owed: start again from now."""
    repo = deps.repository(ctx.conn)
    await _reschedule_from_now(deps, repo, await repo.schedules_to_reschedule(organization_id=data.organization_id))


async def reschedule_brand(deps: SchedulerDeps, ctx: EventContext, data: BrandProfileRestored) -> None:
    """The same for a restored brand's schedules."""
    repo = deps.repository(ctx.conn)
    schedules = await repo.schedules_to_reschedule(
        organization_id=ctx.envelope.organizationid, brand_id=data.brand_profile_id
    )
    await _reschedule_from_now(deps, repo, schedules)


async def _reschedule_from_now(deps: SchedulerDeps, repo: ScheduleRepository, schedules: list[Schedule]) -> None:
    now = deps.clock()
    for schedule in schedules:
        await repo.update_schedule(schedule.id, next_run_at=next_run(schedule.recurrence(), now))


# --- schedules -------------------------------------------------------------------------------


async def schedule_upserted(deps: SchedulerDeps, ctx: EventContext, data: ScheduleCreated | ScheduleUpdated) -> None:
    repo = deps.repository(ctx.conn)
    org = ctx.envelope.organizationid
    times = list(data.times)
    days = [int(d) for d in data.days_of_week]
    problems = schedule_problems(times, days)
    brand_owner = await repo.brand_owner(data.brand_profile_id)
    if brand_owner is None:
        problems.append(f"unknown brand_profile_id {data.brand_profile_id} for this organization")
    elif brand_owner != org:
        problems.append(f"brand {data.brand_profile_id} belongs to another organization")
    existing = await repo.schedule(data.schedule_id, lock=True)
    if existing is not None and existing.organization_id != org:
        problems.append(f"schedule {data.schedule_id} belongs to another organization")
    if problems:
        raise PermanentError("invalid schedule: " + "; ".join(problems))
    rule = Recurrence.parse(data.timezone, times, days)
    await repo.upsert_schedule(
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
            "next_run_at": next_run(rule, deps.clock()),
        },
    )


async def _owned_schedule(repo: ScheduleRepository, ctx: EventContext, schedule_id: uuid.UUID) -> Schedule:
    return _owned(ctx, schedule_id, await repo.schedule(schedule_id, lock=True))


def _owned(ctx: EventContext, schedule_id: uuid.UUID, schedule: Schedule | None) -> Schedule:
    """The schedule, when it is the event's organization's; PermanentError otherwise."""
    if schedule is None:
        raise PermanentError(f"unknown schedule {schedule_id} for this organization")
    if schedule.organization_id != ctx.envelope.organizationid:
        raise PermanentError(f"schedule {schedule_id} belongs to another organization")
    return schedule


async def schedule_paused(deps: SchedulerDeps, ctx: EventContext, data: SchedulePaused) -> None:
    repo = deps.repository(ctx.conn)
    await _owned_schedule(repo, ctx, data.schedule_id)
    await repo.update_schedule(data.schedule_id, status=ScheduleStatus.PAUSED.value)


async def schedule_resumed(deps: SchedulerDeps, ctx: EventContext, data: ScheduleResumed) -> None:
    repo = deps.repository(ctx.conn)
    schedule = await _owned_schedule(repo, ctx, data.schedule_id)
    await repo.update_schedule(
        data.schedule_id,
        status=ScheduleStatus.ACTIVE.value,
        consecutive_errors=0,
        next_run_at=next_run(schedule.recurrence(), deps.clock()),
    )


async def schedule_deleted(deps: SchedulerDeps, ctx: EventContext, data: ScheduleDeleted) -> None:
    repo = deps.repository(ctx.conn)
    schedule = await _owned_schedule(repo, ctx, data.schedule_id)
    if schedule.deleted_at is None:
        await repo.update_schedule(data.schedule_id, deleted_at=deps.clock())


async def material_submitted(deps: SchedulerDeps, ctx: EventContext, data: MaterialSubmitted) -> None:
    """A new material lifts EXHAUSTED from the brand's schedules (another organization's
    brand is refused: its schedules are not this organization's to wake)."""
    org = ctx.envelope.organizationid
    if await projections.owned_by_another(ctx.conn, "brands", data.brand_profile_id, org):
        raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
    repo = deps.repository(ctx.conn)
    for schedule in await repo.schedules_to_reschedule(organization_id=org, brand_id=data.brand_profile_id):
        if schedule.status == ScheduleStatus.EXHAUSTED.value:
            await repo.update_schedule(
                schedule.id,
                status=ScheduleStatus.ACTIVE.value,
                next_run_at=next_run(schedule.recurrence(), deps.clock()),
            )


async def trigger_requested(deps: SchedulerDeps, ctx: EventContext, data: ScheduleTriggerRequested) -> None:
    """Post now: one run at once. The inbox makes it once per trigger event; the run row's
    unique trigger_event_id makes it once even if the inbox were bypassed."""
    repo = deps.repository(ctx.conn)
    target = await repo.trigger_target(data.schedule_id)
    schedule = _owned(ctx, data.schedule_id, None if target is None else target[0])
    if schedule.deleted_at is not None:
        log.info("trigger for deleted schedule %s ignored", data.schedule_id)
        return
    if target is None or not target[1]:
        log.info("trigger for schedule %s of an inactive brand or organization ignored", data.schedule_id)
        return
    run_id = uuid.uuid4()
    due_at = deps.clock()
    if await repo.insert_trigger_run(run_id, schedule, due_at, ctx.envelope.id):
        await ctx.emit(_schedule_due(schedule, run_id, due_at, due_at + deps.run_deadline), correlation_id=str(run_id))


# --- outcomes --------------------------------------------------------------------------------


async def run_completed(deps: SchedulerDeps, ctx: EventContext, data: ScheduleRunCompleted) -> None:
    repo = deps.repository(ctx.conn)
    outcome = _value(data.outcome)
    org = ctx.envelope.organizationid
    schedule = await repo.complete_run(data.run_id, org, outcome, data.completed_at)
    if schedule is not None:
        stage = Stage(ctx.envelope.type, ctx.envelope.time, detail=outcome)
        await deps.runs(ctx.conn).record_stage(data.run_id, org, stage)
    if schedule is None:
        if await repo.run_owned_by_another(data.run_id, org):
            # Never ends, nor counts against the schedule of, another organization's run.
            raise PermanentError(f"run {data.run_id} belongs to another organization")
        return  # not one of ours, or already recorded
    before = ScheduleStatus(schedule.status)
    status, streak = status_after_outcome(before, schedule.consecutive_errors, outcome)
    await repo.update_schedule(schedule.id, status=status.value, consecutive_errors=streak, last_outcome=outcome)
    if status is not before:
        log.info("schedule %s is now %s after %s", schedule.id, status.value, outcome)


DISPATCH: Dispatch = {
    **tenant_dispatch(
        after={"OrganizationRestored": reschedule_organization, "BrandProfileRestored": reschedule_brand}
    ),
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


def _schedule_due(schedule: Schedule, run_id: uuid.UUID, due_at: datetime, deadline: datetime) -> ScheduleDue:
    return ScheduleDue(
        run_id=run_id,
        schedule_id=schedule.id,
        brand_profile_id=schedule.brand_profile_id,
        due_at=due_at,
        platforms=cast(Any, list(schedule.platforms)),  # the contract validates the names
        target_pillar=None,
        deadline=deadline,
    )


async def claim_and_emit(deps: SchedulerDeps, conn: Conn, kafka: KafkaSettings, *, now: datetime, limit: int) -> int:
    """In the caller's transaction: claim due schedules, record their runs, write their
    ScheduleDue events to the outbox and advance next_run_at. Returns the runs fired."""
    repo = deps.repository(conn)
    claimed = await repo.claim_due_schedules(now, limit)
    if not claimed:
        return 0
    planned: list[tuple[Schedule, uuid.UUID, datetime, str]] = []
    updates = []
    for schedule in claimed:
        assert schedule.next_run_at is not None  # the claim takes only due schedules
        policy = schedule.missed_run_policy
        plan = plan_due(schedule.recurrence(), schedule.next_run_at, now, MissedRunPolicy(policy))
        if plan.missed:
            metrics.MISSED_RUNS.labels(policy).inc(plan.missed)
            log.warning(
                "schedule %s missed %d run(s); policy %s fires %d", schedule.id, plan.missed, policy, len(plan.fire)
            )
        for due_at in plan.fire:
            kind = "SCHEDULED" if now - due_at <= MISSED_AFTER else "CATCH_UP"
            planned.append((schedule, uuid.uuid4(), due_at, kind))
        updates.append((schedule.id, plan.next_run_at, plan.missed, plan.fire[-1] if plan.fire else None))
    inserted = await repo.insert_runs(
        [(run_id, s.id, s.organization_id, due_at, kind) for s, run_id, due_at, kind in planned],
    )
    rows: list[OutboxRow] = []
    for schedule, run_id, due_at, _kind in planned:
        if run_id not in inserted:
            continue
        # Each run is the root of its own trace (the ScheduleDue's `create` span, by the
        # messaging conventions): everything the saga does joins it.
        topic = kafka.topic(SCHEDULER)
        with tracer.start_as_current_span(
            f"create {topic}",
            context=Context(),
            kind=SpanKind.PRODUCER,
            attributes={
                **messaging_attributes("create", topic, key=str(schedule.organization_id)),
                "hopcast.run_id": str(run_id),
            },
        ):
            trace = inject_headers()
        rows += event_rows(
            kafka,
            [_schedule_due(schedule, run_id, due_at, max(due_at, now) + deps.run_deadline)],
            organization_id=schedule.organization_id,
            source=SOURCE,
            correlation_id=str(run_id),
            causation_id=None,
            trace=trace,
        )
    await repo.write_outbox(rows)
    await repo.advance_schedules(updates)
    metrics.RUNS_FIRED.inc(len(rows))
    return len(rows)
