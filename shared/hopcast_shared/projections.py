"""The statements of the organization and brand projection every service keeps of upstream's
tenants (its handlers are hopcast_shared.tenants; its tables `organizations` and `brands`, in
the shape of migrations/tenants/). Also the tenant-scoped soft delete and the purge's locking
that every service's own tables share.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from hopcast_shared.db import Conn


async def upsert_organization(conn: Conn, org_id: uuid.UUID, name: str) -> None:
    await conn.execute(
        """
        INSERT INTO organizations (id, name) VALUES ($1, $2)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()
        """,
        org_id,
        name,
    )


async def set_organization_deleted(conn: Conn, org_id: uuid.UUID, deleted: bool) -> None:
    """Soft delete or restore; an organization not seen yet is recorded, so its state is known."""
    await conn.execute(
        """
        INSERT INTO organizations (id, deleted_at) VALUES ($1, CASE WHEN $2 THEN now() END)
        ON CONFLICT (id) DO UPDATE
        SET deleted_at = CASE WHEN $2 THEN coalesce(organizations.deleted_at, now()) END, updated_at = now()
        """,
        org_id,
        deleted,
    )


async def organization_is_deleted(conn: Conn, org_id: uuid.UUID) -> bool:
    return await conn.fetchval("SELECT deleted_at IS NOT NULL FROM organizations WHERE id = $1", org_id) is True


async def upsert_brand(
    conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID, name: str, timezone: str, profile: dict[str, Any]
) -> bool:
    """Record a brand's whole state; False (nothing written) when the id is another organization's."""
    status = await conn.execute(
        """
        INSERT INTO brands (id, organization_id, name, timezone, profile) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE
        SET name = EXCLUDED.name, timezone = EXCLUDED.timezone, profile = EXCLUDED.profile, updated_at = now()
        WHERE brands.organization_id = EXCLUDED.organization_id
        """,
        brand_id,
        org_id,
        name,
        timezone,
        profile,
    )
    return bool(status != "INSERT 0 0")


async def brand_owner(conn: Conn, brand_id: uuid.UUID) -> uuid.UUID | None:
    """The organization a brand belongs to; None when no organization has it (yet)."""
    owner: uuid.UUID | None = await conn.fetchval("SELECT organization_id FROM brands WHERE id = $1", brand_id)
    return owner


async def set_brand_deleted(conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
    """Soft delete or restore a brand of `brands (id, organization_id, deleted_at, updated_at, ...)`;
    False when the organization has no such brand (another tenant's id changes nothing)."""
    return await set_deleted(conn, "brands", brand_id, org_id, deleted)


SoftDeletable = Literal["brands", "social_accounts", "materials"]


async def set_deleted(conn: Conn, table: SoftDeletable, row_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
    """Soft delete (keeping the first deletion time) or restore one organization's row of a
    table with `id, organization_id, deleted_at, updated_at`; False when the organization has
    no such row (another tenant's id changes nothing)."""
    status = await conn.execute(
        f"""
        UPDATE {table} SET deleted_at = CASE WHEN $3 THEN coalesce(deleted_at, now()) END, updated_at = now()
        WHERE id = $1 AND organization_id = $2
        """,
        row_id,
        org_id,
        deleted,
    )
    return bool(status != "UPDATE 0")


Owned = Literal["brands", "social_accounts", "materials", "schedules"]


async def owned_by_another(conn: Conn, table: Owned, row_id: uuid.UUID, org_id: uuid.UUID) -> bool:
    """Whether `table` has this row for another organization than `org_id`: an event naming it
    is refused (a dead letter saying so), not ignored as if the id were unknown."""
    return bool(
        await conn.fetchval(f"SELECT true FROM {table} WHERE id = $1 AND organization_id <> $2", row_id, org_id)
    )


async def lock_purgeable(conn: Conn, older_than_days: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(organizations, brands) soft-deleted more than `older_than_days` ago, the brands with
    those of such organizations, locked in id order: a restore arriving during the purge waits,
    then finds them gone (they come back empty) rather than half purged."""
    cutoff = "now() - make_interval(days => $1)"
    orgs = [
        r["id"]
        for r in await conn.fetch(
            f"SELECT id FROM organizations WHERE deleted_at < {cutoff} ORDER BY id FOR UPDATE", older_than_days
        )
    ]
    brands = [
        r["id"]
        for r in await conn.fetch(
            f"""SELECT id FROM brands WHERE deleted_at < {cutoff} OR organization_id = ANY($2::uuid[])
                ORDER BY id FOR UPDATE""",
            older_than_days,
            orgs,
        )
    ]
    return orgs, brands


class TenantProjection:
    """The projection's rows in one transaction, as the kernel's handlers (hopcast_shared.tenants)
    use them. A service's dependencies may carry `tenants`, a factory of something with these
    methods from a connection; its unit tests give an in-memory one."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def upsert_organization(self, org_id: uuid.UUID, name: str) -> None:
        await upsert_organization(self.conn, org_id, name)

    async def set_organization_deleted(self, org_id: uuid.UUID, deleted: bool) -> None:
        await set_organization_deleted(self.conn, org_id, deleted)

    async def upsert_brand(
        self, brand_id: uuid.UUID, org_id: uuid.UUID, name: str, timezone: str, profile: dict[str, Any]
    ) -> bool:
        return await upsert_brand(self.conn, brand_id, org_id, name, timezone, profile)

    async def set_brand_deleted(self, brand_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        return await set_brand_deleted(self.conn, brand_id, org_id, deleted)

    async def brand_of_another(self, brand_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        return await owned_by_another(self.conn, "brands", brand_id, org_id)
