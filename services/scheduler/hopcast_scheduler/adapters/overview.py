"""The scheduler's part of an organization's overview: its schedules counted by status."""

from __future__ import annotations

import uuid

from hopcast_shared.db import Conn

# A schedule is active when the claim would fire it once due (adapters/repository.CLAIM_DUE):
# ACTIVE, switched on, not deleted, its brand not deleted. A switched-off schedule shows as
# INACTIVE, whatever status it keeps for when it is switched on again.
SCHEDULES_BY_STATUS = """
SELECT CASE WHEN s.is_active THEN s.status ELSE 'INACTIVE' END AS status,
       count(*) AS n,
       count(*) FILTER (WHERE s.status = 'ACTIVE' AND s.is_active AND b.deleted_at IS NULL) AS active
FROM schedules s
LEFT JOIN brands b ON b.id = s.brand_profile_id
WHERE s.organization_id = $1 AND s.deleted_at IS NULL
GROUP BY 1
"""


async def schedules_by_status(conn: Conn, org: uuid.UUID) -> tuple[int, dict[str, int]]:
    """(active schedules, live schedules by status) of the organization."""
    rows = await conn.fetch(SCHEDULES_BY_STATUS, org)
    return sum(int(r["active"]) for r in rows), {
        r["status"]: int(r["n"]) for r in sorted(rows, key=lambda r: r["status"])
    }
