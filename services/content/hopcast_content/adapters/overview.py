"""Content's part of an organization's overview: its active brands and its ready materials."""

from __future__ import annotations

import uuid

from hopcast_shared.db import Conn

# A ready material is one selection may pick: READY, not deleted, of a brand not deleted
# (the same rows as materials_selectable, over the organization's live brands).
BRANDS_AND_READY_MATERIALS = """
SELECT count(*) AS active_brands,
       coalesce(sum((SELECT count(*) FROM materials m
                     WHERE m.brand_profile_id = b.id AND m.status = 'READY' AND m.deleted_at IS NULL)), 0)
           AS ready_materials
FROM brands b
WHERE b.organization_id = $1 AND b.deleted_at IS NULL
"""


async def brands_and_ready_materials(conn: Conn, org: uuid.UUID) -> tuple[int, int]:
    """(active brands, ready materials) of the organization."""
    row = await conn.fetchrow(BRANDS_AND_READY_MATERIALS, org)
    assert row is not None  # an aggregate always answers one row
    return int(row["active_brands"]), int(row["ready_materials"])
