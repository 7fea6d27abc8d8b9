"""The organization and brand projection, one handler set for every service.

Each service keeps a projection of upstream's tenants: which organizations and brands exist,
which are deleted, a brand's time zone (the scheduler's due times) and its profile (content's
voice). The handlers are written here once; a service puts `tenant_dispatch(...)` into its
DISPATCH and adds its own step after the kernel's where it has one (the scheduler reschedules a
restored brand's schedules; billing opens a new organization's balance). The tables are the
kernel's (migrations/tenants/); the statements are hopcast_shared.projections (TenantProjection).

An event naming a brand another organization has is refused (a dead letter saying so), never
applied to that organization's row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hopcast_shared.contract import (
    BrandProfileCreated,
    BrandProfileDeleted,
    BrandProfileRestored,
    BrandProfileUpdated,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationRestored,
)
from hopcast_shared.db import Conn
from hopcast_shared.dispatch import HandlerFn
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.projections import TenantProjection

# A service's step after the kernel's, in the same transaction: `after(deps, ctx, data)`.
After = Callable[[Any, EventContext, Any], Awaitable[None]]

ORGANIZATION_EVENTS = ("OrganizationCreated", "OrganizationDeleted", "OrganizationRestored")
BRAND_EVENTS = ("BrandProfileCreated", "BrandProfileUpdated", "BrandProfileDeleted", "BrandProfileRestored")


def _rows(deps: Any, ctx: EventContext) -> TenantProjection:
    """The service's own projection store when its dependencies carry one (an in-memory one in
    unit tests), else the kernel's tables in the event's transaction."""
    factory: Callable[[Conn], TenantProjection] = getattr(deps, "tenants", TenantProjection)
    return factory(ctx.conn)


async def organization_created(deps: Any, ctx: EventContext, data: OrganizationCreated) -> bool:
    await _rows(deps, ctx).upsert_organization(data.organization_id, data.name)
    return True


async def organization_deleted(deps: Any, ctx: EventContext, data: OrganizationDeleted) -> bool:
    await _rows(deps, ctx).set_organization_deleted(data.organization_id, True)
    return True


async def organization_restored(deps: Any, ctx: EventContext, data: OrganizationRestored) -> bool:
    await _rows(deps, ctx).set_organization_deleted(data.organization_id, False)
    return True


async def brand_upserted(deps: Any, ctx: EventContext, data: BrandProfileCreated | BrandProfileUpdated) -> bool:
    profile = data.model_dump(mode="json", exclude={"brand_profile_id", "name"})
    org = ctx.envelope.organizationid
    if not await _rows(deps, ctx).upsert_brand(data.brand_profile_id, org, data.name, data.timezone, profile):
        raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
    return True


async def _set_brand_deleted(
    deps: Any, ctx: EventContext, data: BrandProfileDeleted | BrandProfileRestored, deleted: bool
) -> bool:
    """Soft delete or restore the organization's brand; False when no organization has it (it
    may come later); refused when another organization has it."""
    org, rows = ctx.envelope.organizationid, _rows(deps, ctx)
    if await rows.set_brand_deleted(data.brand_profile_id, org, deleted):
        return True
    if await rows.brand_of_another(data.brand_profile_id, org):
        raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
    return False


async def brand_deleted(deps: Any, ctx: EventContext, data: BrandProfileDeleted) -> bool:
    return await _set_brand_deleted(deps, ctx, data, True)


async def brand_restored(deps: Any, ctx: EventContext, data: BrandProfileRestored) -> bool:
    return await _set_brand_deleted(deps, ctx, data, False)


# A kernel step: True when it applied to this organization's rows (the service's step follows).
Step = Callable[[Any, EventContext, Any], Awaitable[bool]]

_STEPS: dict[str, Step] = {
    "OrganizationCreated": organization_created,
    "OrganizationDeleted": organization_deleted,
    "OrganizationRestored": organization_restored,
    "BrandProfileCreated": brand_upserted,
    "BrandProfileUpdated": brand_upserted,
    "BrandProfileDeleted": brand_deleted,
    "BrandProfileRestored": brand_restored,
}


def _handler(step: Step, after: After | None) -> HandlerFn:
    async def handle(deps: Any, ctx: EventContext, data: Any) -> None:
        # The service's step runs only when the kernel's applied (a brand of this organization).
        if await step(deps, ctx, data) and after is not None:
            await after(deps, ctx, data)

    handle.__name__ = step.__name__
    handle.__qualname__ = step.__qualname__
    return handle


def tenant_dispatch(*, brands: bool = True, after: Mapping[str, After] | None = None) -> dict[str, HandlerFn]:
    """The projection's part of a service's DISPATCH: the organization events, and the brand
    events unless `brands=False` (billing keeps no brands). `after[event type]` is the service's
    own step, run next in the same transaction once the kernel's has applied."""
    after = dict(after or {})
    types = ORGANIZATION_EVENTS + (BRAND_EVENTS if brands else ())
    unknown = set(after) - set(types)
    if unknown:
        raise ValueError(f"no kernel step for {sorted(unknown)}")
    # One handler per (step, after), so Created and Updated share it and the consumer groups them.
    made: dict[tuple[Step, After | None], HandlerFn] = {}
    dispatch: dict[str, HandlerFn] = {}
    for event_type in types:
        key = (_STEPS[event_type], after.get(event_type))
        if key not in made:
            made[key] = _handler(*key)
        dispatch[event_type] = made[key]
    return dispatch
