"""SQL of content: projections, materials, runs and drafts, published posts, and embeddings.

Every statement is scoped by organization where the data is tenant data. The duplicate
check lives in dedup.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hopcast_content.domain.angles import AngleStats
from hopcast_content.domain.selection import Candidate
from hopcast_shared import projections
from hopcast_shared.contract import Angle
from hopcast_shared.db import Conn

# Serialises the runs of one organization (its duplicate check must see the previous draft).
_RUN_LOCK_NAMESPACE = 0x636F6E74  # "cont"

# --- projections ----------------------------------------------------------------------------------


async def upsert_brand(conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID, name: str, profile: dict[str, Any]) -> bool:
    """False when the brand id belongs to another organization (refused)."""
    owner = await conn.fetchval("SELECT organization_id FROM brands WHERE id = $1", brand_id)
    if owner is not None and owner != org_id:
        return False
    await conn.execute(
        """
        INSERT INTO brands (id, organization_id, name, profile) VALUES ($1, $2, $3, $4)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, profile = EXCLUDED.profile, updated_at = now()
        """,
        brand_id,
        org_id,
        name,
        profile,
    )
    return True


async def brand(conn: Conn, brand_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM brands WHERE id = $1", brand_id)


async def upsert_schedule(
    conn: Conn, schedule_id: uuid.UUID, org_id: uuid.UUID, brand_id: uuid.UUID, strategy: str, mode: str
) -> bool:
    """False when the schedule id belongs to another organization (refused)."""
    owner = await conn.fetchval("SELECT organization_id FROM schedules WHERE id = $1", schedule_id)
    if owner is not None and owner != org_id:
        return False
    await conn.execute(
        """
        INSERT INTO schedules (id, organization_id, brand_profile_id, material_strategy, generation_mode)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE SET brand_profile_id = EXCLUDED.brand_profile_id,
            material_strategy = EXCLUDED.material_strategy, generation_mode = EXCLUDED.generation_mode,
            updated_at = now()
        """,
        schedule_id,
        org_id,
        brand_id,
        strategy,
        mode,
    )
    return True


async def set_schedule_deleted(conn: Conn, schedule_id: uuid.UUID, org_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE schedules SET deleted_at = coalesce(deleted_at, now()), updated_at = now() "
        "WHERE id = $1 AND organization_id = $2",
        schedule_id,
        org_id,
    )


async def schedule(conn: Conn, schedule_id: uuid.UUID, org_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM schedules WHERE id = $1 AND organization_id = $2", schedule_id, org_id)


# --- materials --------------------------------------------------------------------------------------


async def material_owner(conn: Conn, material_id: uuid.UUID) -> uuid.UUID | None:
    owner: uuid.UUID | None = await conn.fetchval("SELECT organization_id FROM materials WHERE id = $1", material_id)
    return owner


async def insert_material(conn: Conn, values: dict[str, Any]) -> bool:
    """Insert an UPLOADED material; False when that id exists already."""
    status = await conn.execute(
        """
        INSERT INTO materials (id, organization_id, brand_profile_id, type, title, body, media_urls,
                               content_pillar, max_uses)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (id) DO NOTHING
        """,
        values["id"],
        values["organization_id"],
        values["brand_profile_id"],
        values["type"],
        values["title"],
        values["body"],
        values["media_urls"],
        values["content_pillar"],
        values["max_uses"],
    )
    return status == "INSERT 0 1"


async def material(
    conn: Conn, material_id: uuid.UUID, org_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM materials WHERE id = $1 AND organization_id = $2" + (" FOR UPDATE" if lock else ""),
        material_id,
        org_id,
    )


async def set_material_status(
    conn: Conn,
    material_id: uuid.UUID,
    status: str,
    *,
    failure_reason: str | None = None,
    content_hash: str | None = None,
) -> None:
    await conn.execute(
        """
        UPDATE materials SET status = $2, failure_reason = $3, content_hash = coalesce($4, content_hash),
            updated_at = now()
        WHERE id = $1
        """,
        material_id,
        status,
        failure_reason,
        content_hash,
    )


async def set_material_deleted(conn: Conn, material_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
    return await projections.set_deleted(conn, "materials", material_id, org_id, deleted)


async def claim_waiting_materials(conn: Conn, limit: int) -> list[asyncpg.Record]:
    """UPLOADED materials no other replica is processing (in the caller's transaction)."""
    return await conn.fetch(
        """
        SELECT * FROM materials WHERE status = 'UPLOADED' AND deleted_at IS NULL
        ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
        """,
        limit,
    )


SELECTABLE = """
SELECT m.id, m.usage_count, m.last_used_at, m.created_at, m.content_pillar,
       (SELECT avg(p.engagement_rate) FROM posts p
         WHERE p.material_id = m.id AND p.engagement_rate IS NOT NULL) AS engagement
FROM materials m
WHERE m.brand_profile_id = $1 AND m.organization_id = $2
  AND m.status = 'READY' AND m.deleted_at IS NULL
  AND (m.max_uses IS NULL OR m.usage_count < m.max_uses)
  -- not while a pending post of it is in flight (its run has not ended, and was not lost long ago)
  AND NOT EXISTS (
      SELECT 1 FROM pending_posts pp
      WHERE pp.material_id = m.id AND pp.ended_at IS NULL AND pp.created_at > now() - make_interval(hours => $3)
  )
"""


async def selectable_candidates(
    conn: Conn, brand_id: uuid.UUID, org_id: uuid.UUID, *, in_flight_hours: int = 168
) -> list[Candidate]:
    """The brand's selectable materials (the brand and organization are checked by the caller).

    A draft whose run never ended (a lost ScheduleRunCompleted) holds its material for
    `in_flight_hours` at most."""
    rows = await conn.fetch(SELECTABLE, brand_id, org_id, in_flight_hours)
    return [
        Candidate(
            material_id=r["id"],
            usage_count=r["usage_count"],
            last_used_at=r["last_used_at"],
            created_at=r["created_at"],
            content_pillar=r["content_pillar"],
            engagement=float(r["engagement"]) if r["engagement"] is not None else None,
        )
        for r in rows
    ]


async def material_counts(conn: Conn, brand_id: uuid.UUID) -> dict[str, int]:
    rows = await conn.fetch(
        """
        SELECT CASE WHEN deleted_at IS NOT NULL THEN 'DELETED' ELSE status END AS status, count(*) AS n
        FROM materials WHERE brand_profile_id = $1 GROUP BY 1
        """,
        brand_id,
    )
    counts = {r["status"]: int(r["n"]) for r in rows}
    counts["IN_FLIGHT"] = int(
        await conn.fetchval(
            "SELECT count(DISTINCT material_id) FROM pending_posts WHERE brand_profile_id = $1 AND ended_at IS NULL",
            brand_id,
        )
    )
    return counts


async def recent_pillar_counts(conn: Conn, brand_id: uuid.UUID, since: datetime) -> dict[str | None, int]:
    """Drafts of the brand per material pillar since `since` (as submitted, matched later)."""
    rows = await conn.fetch(
        """
        SELECT content_pillar, count(*) AS n FROM pending_posts
        WHERE brand_profile_id = $1 AND created_at >= $2 GROUP BY content_pillar
        """,
        brand_id,
        since,
    )
    return {r["content_pillar"]: int(r["n"]) for r in rows}


async def angle_stats(conn: Conn, brand_id: uuid.UUID) -> dict[Angle, AngleStats]:
    rows = await conn.fetch(
        """
        SELECT angle, count(*) AS n, avg(engagement_rate) AS mean, coalesce(stddev_pop(engagement_rate), 0) AS sd
        FROM posts WHERE brand_profile_id = $1 AND engagement_rate IS NOT NULL GROUP BY angle
        """,
        brand_id,
    )
    return {Angle(r["angle"]): AngleStats(int(r["n"]), float(r["mean"]), float(r["sd"])) for r in rows}


async def count_use(conn: Conn, pending_post_id: uuid.UUID, used_at: datetime) -> asyncpg.Record | None:
    """Mark the pending post's use counted, once; returns its material (locked) the first time."""
    material_id = await conn.fetchval(
        "UPDATE pending_posts SET use_counted = true WHERE id = $1 AND NOT use_counted RETURNING material_id",
        pending_post_id,
    )
    if material_id is None:
        return None
    return await conn.fetchrow(
        """
        UPDATE materials SET usage_count = usage_count + 1,
            last_used_at = greatest(coalesce(last_used_at, $2), $2), updated_at = now()
        WHERE id = $1 RETURNING id, status, usage_count, max_uses
        """,
        material_id,
        used_at,
    )


# --- runs and drafts ----------------------------------------------------------------------------------


async def start_run(conn: Conn, run_id: uuid.UUID, org_id: uuid.UUID, data: Any) -> bool:
    """Record the run; False when it was handled before (one result per run)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO runs (run_id, organization_id, schedule_id, brand_profile_id, due_at, result)
        VALUES ($1, $2, $3, $4, $5, 'STARTED')
        ON CONFLICT (run_id) DO NOTHING RETURNING true
        """,
        run_id,
        org_id,
        data.schedule_id,
        data.brand_profile_id,
        data.due_at,
    )
    return bool(inserted)


async def finish_run(conn: Conn, run_id: uuid.UUID, result: str) -> None:
    await conn.execute("UPDATE runs SET result = $2 WHERE run_id = $1", run_id, result)


async def lock_organization_runs(conn: Conn, org_id: uuid.UUID) -> None:
    """Until the transaction ends, no other run of the organization drafts (its duplicate
    check must see this run's draft)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _RUN_LOCK_NAMESPACE, str(org_id))


async def insert_pending_post(conn: Conn, values: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO pending_posts (id, run_id, organization_id, brand_profile_id, schedule_id, material_id,
            content_pillar, content, hashtags, media_urls, platforms, angle, angle_reason, max_similarity,
            requires_approval, due_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        """,
        values["id"],
        values["run_id"],
        values["organization_id"],
        values["brand_profile_id"],
        values["schedule_id"],
        values["material_id"],
        values["content_pillar"],
        values["content"],
        values["hashtags"],
        values["media_urls"],
        values["platforms"],
        values["angle"],
        values["angle_reason"],
        values["max_similarity"],
        values["requires_approval"],
        values["due_at"],
    )


async def end_pending_post(
    conn: Conn, run_id: uuid.UUID, org_id: uuid.UUID, outcome: str, ended_at: datetime
) -> asyncpg.Record | None:
    """The run ended: its pending post is no longer in flight (its material selectable again)."""
    return await conn.fetchrow(
        """
        UPDATE pending_posts SET ended_at = coalesce(ended_at, $4), outcome = coalesce(outcome, $3)
        WHERE run_id = $1 AND organization_id = $2
        RETURNING id, material_id, use_counted
        """,
        run_id,
        org_id,
        outcome,
        ended_at,
    )


async def pending_post(conn: Conn, pending_post_id: uuid.UUID, org_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM pending_posts WHERE id = $1 AND organization_id = $2", pending_post_id, org_id
    )


# --- published posts and engagement ----------------------------------------------------------------------


async def record_post(conn: Conn, org_id: uuid.UUID, data: Any) -> None:
    await conn.execute(
        """
        INSERT INTO posts (post_id, organization_id, brand_profile_id, pending_post_id, material_id, platform,
                           angle, published_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (post_id) DO UPDATE SET pending_post_id = EXCLUDED.pending_post_id,
            material_id = EXCLUDED.material_id, published_at = EXCLUDED.published_at, updated_at = now()
        WHERE posts.organization_id = EXCLUDED.organization_id
        """,
        data.post_id,
        org_id,
        data.brand_profile_id,
        data.pending_post_id,
        data.material_id,
        str(data.platform),
        str(data.angle),
        data.published_at,
    )


async def record_engagement(conn: Conn, org_id: uuid.UUID, data: Any) -> None:
    await conn.execute(
        """
        INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle, engagement_rate, impressions)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (post_id) DO UPDATE SET engagement_rate = EXCLUDED.engagement_rate,
            impressions = EXCLUDED.impressions, updated_at = now()
        WHERE posts.organization_id = EXCLUDED.organization_id
        """,
        data.post_id,
        org_id,
        data.brand_profile_id,
        str(data.platform),
        str(data.angle),
        data.engagement_rate,
        data.impressions,
    )


# --- embeddings -------------------------------------------------------------------------------------


async def insert_embedding(
    conn: Conn,
    *,
    org_id: uuid.UUID,
    brand_id: uuid.UUID,
    kind: str,
    source_id: uuid.UUID,
    material_id: uuid.UUID,
    content_hash: str,
    material_hash: str,
    embedding: Sequence[float],
    created_at: datetime | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                                        content_hash, material_hash, embedding, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
        ON CONFLICT (kind, source_id) DO NOTHING
        """,
        org_id,
        brand_id,
        kind,
        source_id,
        material_id,
        content_hash,
        material_hash,
        list(embedding),
        created_at,
    )


async def embedding_of(conn: Conn, kind: str, source_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM content_embeddings WHERE kind = $1 AND source_id = $2", kind, source_id)


async def delete_embedding(conn: Conn, kind: str, source_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM content_embeddings WHERE kind = $1 AND source_id = $2", kind, source_id)


# --- retention --------------------------------------------------------------------------------------------


async def purge(conn: Conn, older_than_days: int, *, window_days: int = 30) -> dict[str, int]:
    """Delete for good what was soft-deleted more than `older_than_days` ago (organizations
    with all their data, brands with their materials, materials), runs and ended drafts
    past both the retention and the duplicate window, and their embeddings."""
    keep_days = max(older_than_days, window_days)
    counts: dict[str, int] = {}

    async def run(name: str, sql: str, days: int) -> None:
        status = await conn.execute(sql, days)
        counts[name] = counts.get(name, 0) + int(status.split()[-1])

    cutoff = "now() - make_interval(days => $1)"
    for table in ("content_embeddings", "pending_posts", "materials", "posts", "runs", "schedules", "brands"):
        await run(
            table,
            f"DELETE FROM {table} WHERE organization_id IN (SELECT id FROM organizations WHERE deleted_at < {cutoff})",
            older_than_days,
        )
    await run("organizations", f"DELETE FROM organizations WHERE deleted_at < {cutoff}", older_than_days)
    await run(
        "content_embeddings",
        f"""DELETE FROM content_embeddings WHERE kind = 'MATERIAL' AND source_id IN (
                SELECT id FROM materials WHERE deleted_at < {cutoff}
                   OR brand_profile_id IN (SELECT id FROM brands WHERE deleted_at < {cutoff}))""",
        older_than_days,
    )
    await run(
        "materials",
        f"""DELETE FROM materials WHERE deleted_at < {cutoff}
               OR brand_profile_id IN (SELECT id FROM brands WHERE deleted_at < {cutoff})""",
        older_than_days,
    )
    await run("brands", f"DELETE FROM brands WHERE deleted_at < {cutoff}", older_than_days)
    await run("schedules", f"DELETE FROM schedules WHERE deleted_at < {cutoff}", older_than_days)
    await run(
        "content_embeddings",
        f"DELETE FROM content_embeddings WHERE kind <> 'MATERIAL' AND created_at < {cutoff}",
        keep_days,
    )
    await run("pending_posts", f"DELETE FROM pending_posts WHERE ended_at < {cutoff}", keep_days)
    await run("runs", f"DELETE FROM runs WHERE handled_at < {cutoff}", keep_days)
    return counts
