"""Organizations, brands and schedules as upstream and the scheduler describe them: content
keeps what its runs read (a brand's voice and pillars, a schedule's strategy and mode)."""

from __future__ import annotations

from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.tenancy import refuse_another_organizations, refuse_if_another_organizations
from hopcast_shared import projections
from hopcast_shared.contract import (
    BrandProfileCreated,
    BrandProfileDeleted,
    BrandProfileRestored,
    BrandProfileUpdated,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationRestored,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleUpdated,
)
from hopcast_shared.handling import EventContext


async def organization_created(deps: ContentDeps, ctx: EventContext, data: OrganizationCreated) -> None:
    await projections.upsert_organization(ctx.conn, data.organization_id, data.name)


async def organization_deleted(deps: ContentDeps, ctx: EventContext, data: OrganizationDeleted) -> None:
    await projections.set_organization_deleted(ctx.conn, data.organization_id, True)


async def organization_restored(deps: ContentDeps, ctx: EventContext, data: OrganizationRestored) -> None:
    await projections.set_organization_deleted(ctx.conn, data.organization_id, False)


async def brand_upserted(deps: ContentDeps, ctx: EventContext, data: BrandProfileCreated | BrandProfileUpdated) -> None:
    profile = data.model_dump(mode="json", exclude={"brand_profile_id", "name"})
    brands = deps.projections(ctx.conn)
    if not await brands.upsert_brand(data.brand_profile_id, ctx.envelope.organizationid, data.name, profile):
        refuse_another_organizations("brand", data.brand_profile_id)


async def brand_deleted(deps: ContentDeps, ctx: EventContext, data: BrandProfileDeleted) -> None:
    if not await projections.set_brand_deleted(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, True):
        await refuse_if_another_organizations(deps.projections(ctx.conn), ctx, "brand", data.brand_profile_id)


async def brand_restored(deps: ContentDeps, ctx: EventContext, data: BrandProfileRestored) -> None:
    if not await projections.set_brand_deleted(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, False):
        await refuse_if_another_organizations(deps.projections(ctx.conn), ctx, "brand", data.brand_profile_id)


async def schedule_upserted(deps: ContentDeps, ctx: EventContext, data: ScheduleCreated | ScheduleUpdated) -> None:
    ok = await deps.projections(ctx.conn).upsert_schedule(
        data.schedule_id,
        ctx.envelope.organizationid,
        data.brand_profile_id,
        str(data.material_strategy),
        str(data.generation_mode),
    )
    if not ok:
        refuse_another_organizations("schedule", data.schedule_id)


async def schedule_deleted(deps: ContentDeps, ctx: EventContext, data: ScheduleDeleted) -> None:
    schedules = deps.projections(ctx.conn)
    if not await schedules.set_schedule_deleted(data.schedule_id, ctx.envelope.organizationid):
        await refuse_if_another_organizations(schedules, ctx, "schedule", data.schedule_id)
