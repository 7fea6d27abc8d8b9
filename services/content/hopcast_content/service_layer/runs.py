"""A run, from ScheduleDue to its result: a run picks a material by the schedule's strategy,
chooses an angle, drafts, embeds and checks near-duplicates in the organization, trying the
next material while the draft is too similar (drafting.py); it ends in one
PendingPostCreated, or in one ScheduleRunSkipped plus the run's ScheduleRunCompleted; a run
whose deadline passed before content drafted it (ScheduleDue's deadline, or a RunDeadlinePassed
for a run content never saw) ends TIMED_OUT without drafting. The
`runs` row and the unique run_id of pending posts make that once per run however often
ScheduleDue is delivered.

ScheduleDue is handled in batches: what the runs read is loaded in a few statements for all of
them (a single event is a batch of one), their first drafts are written and embedded together
ahead, and each run decides as if the batch's earlier runs were handled before it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hopcast_content import metrics
from hopcast_content.adapters.runs import Run
from hopcast_content.domain.brands import ScheduleSettings
from hopcast_content.domain.materials import SKIP_OUTCOMES
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.drafting import draft_ahead, draft_run
from hopcast_content.service_layer.run_batch import RunBatch
from hopcast_content.service_layer.tenancy import refuse_another_organizations
from hopcast_shared.contract import (
    MaterialStrategy,
    RunDeadlinePassed,
    RunOutcome,
    ScheduleDue,
    ScheduleRunCompleted,
    ScheduleRunSkipped,
    SkipReason,
)
from hopcast_shared.db import Conn
from hopcast_shared.handling import EventContext
from hopcast_shared.topics import ANALYTICS, CONTENT

log = logging.getLogger(__name__)


def now_utc() -> datetime:
    return datetime.now(UTC)


async def schedule_due(deps: ContentDeps, items: Sequence[tuple[EventContext, ScheduleDue]]) -> None:
    """The runs of a batch (one event is a batch of one), in its order: as if handled one
    after another, with what they read loaded once for all of them and their rows
    written together; only a run's duplicate checks (and the materials of candidates after its
    first) are its own statements."""
    started = time.perf_counter()
    conn = items[0][0].conn
    repo = deps.runs(conn)
    runs: dict[uuid.UUID, Run] = {}
    for ctx, data in items:
        runs.setdefault(
            data.run_id,
            Run(data.run_id, ctx.envelope.organizationid, data.schedule_id, data.brand_profile_id, data.due_at),
        )
    # A run handled before is one of the organization's, or refused: never taken for a
    # redelivery of another organization's run (in this batch or before it).
    for ctx, data in items:
        if runs[data.run_id].organization_id != ctx.envelope.organizationid:
            refuse_another_organizations("run", data.run_id)
    fresh = await repo.start(list(runs.values()))
    seen = [(data.run_id, ctx.envelope.organizationid) for ctx, data in items if data.run_id not in fresh]
    if seen and (of_another := await repo.of_another(seen)):
        refuse_another_organizations("run", min(of_another))
    todo: list[tuple[EventContext, ScheduleDue]] = []
    for ctx, data in items:
        if data.run_id in fresh:
            fresh.discard(data.run_id)  # a later copy of the run in this batch is not handled again
            todo.append((ctx, data))
        else:
            log.info("run %s was handled before", data.run_id)
    now = now_utc()
    late = [(ctx, data) for ctx, data in todo if data.deadline is not None and data.deadline <= now]
    if late:
        # Past its deadline before drafting (content was down or behind): nothing is drafted.
        for ctx, data in late:
            await time_out(ctx, data.run_id, data.schedule_id, data.brand_profile_id, data.due_at)
        await repo.finish({data.run_id: TIMED_OUT for _, data in late})
        todo = [(ctx, data) for ctx, data in todo if not (data.deadline is not None and data.deadline <= now)]
    if not todo:
        return
    await repo.lock_organizations({ctx.envelope.organizationid for ctx, _ in todo})
    batch = await load_runs(deps, conn, todo)
    await draft_ahead(deps, conn, todo, batch)
    share = (time.perf_counter() - started) / len(todo)
    for ctx, data in todo:
        run_started = time.perf_counter()
        reason = await draft_run(deps, ctx, data, batch)
        if reason is not None:
            await skip(ctx, data, reason, batch)
        metrics.RUN_SECONDS.observe(share + time.perf_counter() - run_started)
    await batch.write_drafts()
    await repo.finish(batch.results)


TIMED_OUT = RunOutcome.TIMED_OUT.value


async def run_deadline_passed(deps: ContentDeps, ctx: EventContext, data: RunDeadlinePassed) -> None:
    """Past its deadline: a run content drafted or ended is no longer content's to end (billing
    or the publisher holds it); one content never saw (its ScheduleDue dead-lettered: the
    scheduler writes ScheduleDue before RunDeadlinePassed on the same partition) ends here,
    TIMED_OUT, and its ScheduleDue, replayed later, finds it handled."""
    repo = deps.runs(ctx.conn)
    org = ctx.envelope.organizationid
    run = Run(data.run_id, org, data.schedule_id, data.brand_profile_id, data.due_at)
    if not await repo.start([run]):
        if await repo.of_another([(data.run_id, org)]):
            refuse_another_organizations("run", data.run_id)
        log.info("run %s is past its deadline; content handled it before", data.run_id)
        return
    await time_out(ctx, data.run_id, data.schedule_id, data.brand_profile_id, data.due_at)
    await repo.finish({data.run_id: TIMED_OUT})


async def time_out(
    ctx: EventContext, run_id: uuid.UUID, schedule_id: uuid.UUID, brand_profile_id: uuid.UUID, due_at: datetime
) -> None:
    """The run ends here, undrafted: its one ScheduleRunCompleted, TIMED_OUT (nothing was debited)."""
    await ctx.emit(
        ScheduleRunCompleted(
            run_id=run_id,
            schedule_id=schedule_id,
            brand_profile_id=brand_profile_id,
            outcome=RunOutcome.TIMED_OUT,
            due_at=due_at,
            completed_at=now_utc(),
        ),
        correlation_id=str(run_id),
        topics=[ANALYTICS],
    )
    metrics.RUNS.labels(TIMED_OUT).inc()
    log.warning("run %s ended TIMED_OUT before drafting", run_id)


async def load_runs(deps: ContentDeps, conn: Conn, runs: Sequence[tuple[EventContext, ScheduleDue]]) -> RunBatch:
    """What the runs read, once for all of them; runs that will be skipped load no more
    than they need to be."""
    projections = deps.projections(conn)
    deleted = await projections.deleted_organizations({ctx.envelope.organizationid for ctx, _ in runs})
    live = [(ctx.envelope.organizationid, data) for ctx, data in runs if ctx.envelope.organizationid not in deleted]
    brands = await projections.brands({data.brand_profile_id for _, data in live})
    live = [(org, data) for org, data in live if (brand := brands.get(data.brand_profile_id)) and brand.active_for(org)]
    candidates = await deps.materials(conn).selectable_candidates(
        {(data.brand_profile_id, org) for org, data in live}, in_flight_hours=deps.settings.in_flight_hours
    )
    drafting = [(org, data) for org, data in live if data.brand_profile_id in candidates]
    schedules = await projections.schedules({(data.schedule_id, org) for org, data in drafting})
    default = ScheduleSettings()
    balanced = {
        data.brand_profile_id
        for org, data in drafting
        if schedules.get((data.schedule_id, org), default).strategy is MaterialStrategy.PILLAR_BALANCED
    }
    since = now_utc() - timedelta(days=deps.settings.dedup_window_days)
    runs_repo = deps.runs(conn)
    return RunBatch(
        runs=runs_repo,
        since=since,
        deleted_organizations=deleted,
        brands=brands,
        candidates=candidates,
        schedules=schedules,
        recent_pillars=await runs_repo.recent_pillar_counts(balanced, since),
        angle_stats=await deps.posts(conn).angle_stats({(data.brand_profile_id, org) for org, data in drafting}),
    )


async def skip(ctx: EventContext, data: ScheduleDue, reason: SkipReason, batch: RunBatch) -> None:
    """The run ends here: ScheduleRunSkipped, and the run's one ScheduleRunCompleted."""
    await ctx.emit(
        ScheduleRunSkipped(
            run_id=data.run_id, schedule_id=data.schedule_id, brand_profile_id=data.brand_profile_id, reason=reason
        ),
        correlation_id=str(data.run_id),
        topics=[CONTENT],
    )
    await ctx.emit(
        ScheduleRunCompleted(
            run_id=data.run_id,
            schedule_id=data.schedule_id,
            brand_profile_id=data.brand_profile_id,
            outcome=SKIP_OUTCOMES[reason],
            due_at=data.due_at,
            completed_at=now_utc(),
        ),
        correlation_id=str(data.run_id),
        topics=[ANALYTICS],
    )
    batch.results[data.run_id] = reason.value
    metrics.RUNS.labels(reason.value).inc()
    log.info("run %s skipped: %s", data.run_id, reason.value)
