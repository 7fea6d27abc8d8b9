"""Schedules as the scheduler describes them: content keeps what its runs read (a schedule's
strategy and mode). Organizations and brands (a brand's voice and pillars) are the kernel's
projection, hopcast_shared.tenants."""

from __future__ import annotations

from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.tenancy import refuse_another_organizations, refuse_if_another_organizations
from hopcast_shared.contract import (
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleUpdated,
)
from hopcast_shared.handling import EventContext


async def schedule_upserted(deps: ContentDeps, ctx: EventContext, data: ScheduleCreated | ScheduleUpdated) -> None:
    ok = await deps.projections(ctx.conn).upsert_schedule(
        data.schedule_id,
        ctx.envelope.organizationid,
        data.brand_profile_id,
        str(data.material_strategy),
        str(data.generation_mode),
        data.approval_ttl_minutes,
    )
    if not ok:
        refuse_another_organizations("schedule", data.schedule_id)


async def schedule_deleted(deps: ContentDeps, ctx: EventContext, data: ScheduleDeleted) -> None:
    schedules = deps.projections(ctx.conn)
    if not await schedules.set_schedule_deleted(data.schedule_id, ctx.envelope.organizationid):
        await refuse_if_another_organizations(schedules, ctx, "schedule", data.schedule_id)
