"""The organization projection every service keeps of upstream's tenants.

Each service's own migrations create `organizations (id uuid PRIMARY KEY, name text NOT NULL
DEFAULT '', deleted_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now())`; these
are the statements that keep it, written once.
"""

from __future__ import annotations

import uuid

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
