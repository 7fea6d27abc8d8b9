"""Ids of another organization: an event naming an id another organization has is refused (a
dead letter saying so), never applied to that organization's rows, and never ignored as if
the id were unknown."""

from __future__ import annotations

import uuid
from typing import NoReturn

from hopcast_content.adapters.sql import Repository
from hopcast_shared.contract import EngagementUpdated, PostPublished
from hopcast_shared.handling import EventContext, PermanentError


def refuse_another_organizations(kind: str, named: uuid.UUID) -> NoReturn:
    raise PermanentError(f"{kind} {named} belongs to another organization")


async def refuse_if_another_organizations(repo: Repository, ctx: EventContext, kind: str, named: uuid.UUID) -> None:
    if await repo.owned_by_another(kind, named, ctx.envelope.organizationid):
        refuse_another_organizations(kind, named)


async def refuse_unknown_material(repo: Repository, ctx: EventContext, material_id: uuid.UUID) -> NoReturn:
    await refuse_if_another_organizations(repo, ctx, "material", material_id)
    raise PermanentError(f"unknown material {material_id} for this organization")


def named_id(data: PostPublished | EngagementUpdated, kind: str) -> uuid.UUID:
    """The id of that kind the event names."""
    named: uuid.UUID = getattr(data, f"{kind.replace(' ', '_')}_id" if kind != "brand" else "brand_profile_id")
    return named
