"""A run after it fired, as the scheduler (which owns runs) follows it: each stage the events
report is recorded for its timeline (GET /runs/{id}); a reviewer's wait stops its deadline and
a platform's deferral moves it; and `watch_deadlines`, called by the deadline watch
(entrypoints/deadline_watch.py), tells the services of open runs past their deadline with
RunDeadlinePassed, once per run, in the transaction that marks it told.

Whichever service holds the run ends it TIMED_OUT (content before drafting, billing before
debiting, the publisher before any platform call); the scheduler only tells and watches.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from hopcast_scheduler import metrics
from hopcast_scheduler.adapters.runs import Stage
from hopcast_scheduler.service_layer.handlers import SOURCE, SchedulerDeps
from hopcast_shared.contract import (
    CreditsDebited,
    CreditsDebitRejected,
    CreditsRefunded,
    PendingPostApproved,
    PendingPostCreated,
    PendingPostEditAccepted,
    PendingPostEditRefused,
    PendingPostExpired,
    PendingPostRejected,
    PostPublishDeferred,
    PostPublished,
    PostPublishFailed,
    RunDeadlinePassed,
    ScheduleRunSkipped,
)
from hopcast_shared.db import Conn
from hopcast_shared.dispatch import Dispatch, batched
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.outbox import event_rows
from hopcast_shared.settings import KafkaSettings

log = logging.getLogger(__name__)


async def _record(deps: SchedulerDeps, ctx: EventContext, run_id: uuid.UUID, stage: Stage) -> bool:
    """Record the stage of the organization's run; an unknown run (purged, or never ours) is
    left alone, another organization's refused."""
    org = ctx.envelope.organizationid
    if await deps.runs(ctx.conn).record_stage(run_id, org, stage):
        return True
    if await deps.repository(ctx.conn).run_owned_by_another(run_id, org):
        raise PermanentError(f"run {run_id} belongs to another organization")
    return False


def _stage(ctx: EventContext, **fields: Any) -> Stage:
    return Stage(stage=ctx.envelope.type, at=ctx.envelope.time, **fields)


async def drafted(deps: SchedulerDeps, ctx: EventContext, data: PendingPostCreated) -> None:
    detail = "waits for a reviewer" if data.requires_approval else None
    if await _record(deps, ctx, data.run_id, _stage(ctx, detail=detail)):
        await deps.runs(ctx.conn).drafted(
            data.run_id,
            ctx.envelope.organizationid,
            data.pending_post_id,
            requires_approval=data.requires_approval,
            at=ctx.envelope.time,
        )


def _skipped(ctx: EventContext, data: ScheduleRunSkipped) -> Stage:
    return _stage(ctx, detail=data.reason.value)


def _debited(ctx: EventContext, data: CreditsDebited) -> Stage:
    return _stage(ctx, credits=-data.amount)


def _debit_rejected(ctx: EventContext, data: CreditsDebitRejected) -> Stage:
    return _stage(ctx, detail=data.reason.value)


def _refunded(ctx: EventContext, data: CreditsRefunded) -> Stage:
    return _stage(ctx, credits=data.amount, detail=data.reason.value)


def _published(ctx: EventContext, data: PostPublished) -> Stage:
    return _stage(ctx, platform=data.platform.value, detail=str(data.external_url))


def _publish_failed(ctx: EventContext, data: PostPublishFailed) -> Stage:
    return _stage(ctx, platform=data.platform.value, detail=data.reason.value)


def _edit_refused(ctx: EventContext, data: PendingPostEditRefused) -> Stage:
    """Content refused a reviewer's edit: the draft still waits, and so does the run's deadline."""
    return _stage(ctx, platform=data.platform.value if data.platform is not None else None, detail=data.reason.value)


def _expired(ctx: EventContext, data: PendingPostExpired) -> Stage:
    return _stage(ctx, detail=f"no decision by {data.approval_deadline.isoformat()}")


# The events that only report a stage of their run, and the stage each reports.
_STAGE_OF: dict[str, Callable[[EventContext, Any], Stage]] = {
    "ScheduleRunSkipped": _skipped,
    "CreditsDebited": _debited,
    "CreditsDebitRejected": _debit_rejected,
    "CreditsRefunded": _refunded,
    "PostPublished": _published,
    "PostPublishFailed": _publish_failed,
    "PendingPostEditRefused": _edit_refused,
    "PendingPostExpired": _expired,
}


async def stages_reported(deps: SchedulerDeps, items: Sequence[tuple[EventContext, Any]]) -> None:
    """The stages of a batch's events that only report one (a debit, a publication...), in one
    statement for all of them, each organization's in the order they came. An event naming a
    run its organization does not have is left alone (a run purged, or never ours), one naming
    another organization's run refused (the batch then goes again one event at a time)."""
    conn = items[0][0].conn
    reported = [
        (data.run_id, ctx.envelope.organizationid, _STAGE_OF[ctx.envelope.type](ctx, data)) for ctx, data in items
    ]
    for run_id, org in await deps.runs(conn).record_stages(reported):
        if await deps.repository(conn).run_owned_by_another(run_id, org):
            raise PermanentError(f"run {run_id} belongs to another organization")


async def publish_deferred(deps: SchedulerDeps, ctx: EventContext, data: PostPublishDeferred) -> None:
    """A platform's limit puts the run off: its deadline is at least a run deadline after the retry."""
    detail = f"{data.reason.value} until {data.retry_at.isoformat()}"
    if await _record(deps, ctx, data.run_id, _stage(ctx, platform=data.platform.value, detail=detail)):
        await deps.runs(ctx.conn).deferred_until(data.run_id, data.retry_at, deps.run_deadline)


async def reviewed(
    deps: SchedulerDeps, ctx: EventContext, data: PendingPostApproved | PendingPostRejected | PendingPostEditAccepted
) -> None:
    """A reviewer's decision: the run's deadline runs again. Read before the draft (another
    topic), it waits for the draft to claim it, and no wait is counted. An approval carrying
    an edit decides nothing yet (content checks it; its PendingPostEditAccepted is the
    decision, on the draft's own topic and so always after it): recorded, the clock still
    stopped."""
    runs = deps.runs(ctx.conn)
    org = ctx.envelope.organizationid
    stage = _stage(ctx)
    edit = isinstance(data, PendingPostApproved) and bool(data.texts)
    run_id = await runs.run_of_pending_post(data.pending_post_id, org)
    if run_id is None:
        if not edit:
            await runs.record_unclaimed(data.pending_post_id, org, stage)
        return
    if edit:
        await runs.record_stage(run_id, org, _stage(ctx, detail="an edit, for content to check"))
        return
    await runs.record_stage(run_id, org, stage)
    await runs.approval_decided(run_id, ctx.envelope.time, deps.run_deadline)


_REPORTED = batched(stages_reported)  # one handler for all of them: their events are batched together

STAGES: Dispatch = {
    "PendingPostCreated": drafted,
    "PostPublishDeferred": publish_deferred,
    "PendingPostApproved": reviewed,
    "PendingPostRejected": reviewed,
    "PendingPostEditAccepted": reviewed,
    **dict.fromkeys(_STAGE_OF, _REPORTED),
}


async def watch_deadlines(deps: SchedulerDeps, conn: Conn, kafka: KafkaSettings, *, now: datetime, limit: int) -> int:
    """In the caller's transaction: claim open runs past their deadline not told yet, mark them
    told and write their RunDeadlinePassed. Returns how many."""
    runs = deps.runs(conn)
    past = await runs.claim_past_deadline(now, deps.run_deadline, limit)
    rows = []
    for run in past:
        event = RunDeadlinePassed(
            run_id=run.run_id,
            schedule_id=run.schedule_id,
            brand_profile_id=run.brand_profile_id,
            due_at=run.due_at,
            deadline=run.deadline,
        )
        rows += event_rows(
            kafka,
            [event],
            organization_id=run.organization_id,
            source=SOURCE,
            correlation_id=str(run.run_id),
            causation_id=None,
            trace=[],
        )
        log.warning("run %s is open past its deadline %s: RunDeadlinePassed", run.run_id, run.deadline.isoformat())
    await runs.write_outbox(rows)
    metrics.DEADLINES_PASSED.inc(len(past))
    return len(past)
