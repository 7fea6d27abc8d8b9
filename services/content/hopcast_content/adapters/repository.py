"""SQL of content: projections, materials, runs and drafts, published posts, and embeddings.

Every statement is scoped by organization where the data is tenant data. The duplicate
check lives in dedup.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from hopcast_content.domain.angles import AngleStats
from hopcast_content.domain.selection import Candidate
from hopcast_shared import projections
from hopcast_shared.contract import Angle
from hopcast_shared.db import Conn

# Serialises the runs of one organization (its duplicate check must see the previous draft).
_RUN_LOCK_NAMESPACE = 0x636F6E74  # "cont"


def _columns(rows: Collection[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as columns, to pass as arrays to unnest (`width` empty columns for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]


# --- whose an id is ------------------------------------------------------------------------------

# The ids events name, and where content keeps whose each is.
OWNED: dict[str, tuple[str, str]] = {
    "brand": ("brands", "id"),
    "schedule": ("schedules", "id"),
    "material": ("materials", "id"),
    "run": ("runs", "run_id"),
    "pending post": ("pending_posts", "id"),
    "post": ("posts", "post_id"),
}


def _first_of_another(named: Sequence[tuple[str, int]], org_param: int) -> str:
    """An SQL expression: the first kind of `named` (kind, the parameter holding its id)
    whose id another organization than `$org_param` has, else null."""
    checks = [
        f"(SELECT '{kind}' FROM {OWNED[kind][0]} WHERE {OWNED[kind][1]} = ${param} AND organization_id <> ${org_param})"
        for kind, param in named
    ]
    return f"coalesce({', '.join(checks)})"


async def owned_by_another(conn: Conn, kind: str, row_id: uuid.UUID, org_id: uuid.UUID) -> bool:
    """Whether another organization than `org_id` has this brand, schedule, material, run,
    pending post or post: an event naming it is refused, not ignored as if it were unknown."""
    return await conn.fetchval(f"SELECT {_first_of_another([(kind, 1)], 2)}", row_id, org_id) is not None


async def runs_of_another(conn: Conn, runs: Collection[tuple[uuid.UUID, uuid.UUID]]) -> set[uuid.UUID]:
    """Of these (run id, organization id), the run ids another organization has."""
    run_ids, org_ids = _columns(runs, 2)
    rows = await conn.fetch(
        """
        SELECT r.run_id FROM runs r JOIN unnest($1::uuid[], $2::uuid[]) AS k(run_id, organization_id)
          ON r.run_id = k.run_id AND r.organization_id <> k.organization_id
        """,
        run_ids,
        org_ids,
    )
    return {r["run_id"] for r in rows}


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
    return (await brands(conn, [brand_id])).get(brand_id)


async def brands(conn: Conn, brand_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    """These brands, by id (whatever their organization: the caller checks it)."""
    if not brand_ids:
        return {}
    rows = await conn.fetch("SELECT * FROM brands WHERE id = ANY($1::uuid[])", list(brand_ids))
    return {r["id"]: r for r in rows}


async def deleted_organizations(conn: Conn, org_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Those of these organizations that are deleted (an unknown one is not)."""
    if not org_ids:
        return set()
    rows = await conn.fetch(
        "SELECT id FROM organizations WHERE id = ANY($1::uuid[]) AND deleted_at IS NOT NULL", list(org_ids)
    )
    return {r["id"] for r in rows}


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


async def set_schedule_deleted(conn: Conn, schedule_id: uuid.UUID, org_id: uuid.UUID) -> bool:
    """False when the organization has no such schedule."""
    status = await conn.execute(
        "UPDATE schedules SET deleted_at = coalesce(deleted_at, now()), updated_at = now() "
        "WHERE id = $1 AND organization_id = $2",
        schedule_id,
        org_id,
    )
    return bool(status != "UPDATE 0")


async def schedules(
    conn: Conn, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], asyncpg.Record]:
    """The schedules of these (schedule id, organization id), by that pair: another
    organization's schedule id finds nothing."""
    if not keys:
        return {}
    schedule_ids, org_ids = _columns(keys, 2)
    rows = await conn.fetch(
        """
        SELECT s.* FROM schedules s
        JOIN unnest($1::uuid[], $2::uuid[]) AS k(id, organization_id)
          ON s.id = k.id AND s.organization_id = k.organization_id
        """,
        schedule_ids,
        org_ids,
    )
    return {(r["id"], r["organization_id"]): r for r in rows}


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


async def material_to_draft(conn: Conn, material_id: uuid.UUID, org_id: uuid.UUID) -> asyncpg.Record | None:
    """The material with its own embedding (`material_embedding`, None if it has none)."""
    return await conn.fetchrow(
        """
        SELECT m.*, e.embedding AS material_embedding FROM materials m
        LEFT JOIN content_embeddings e ON e.kind = 'MATERIAL' AND e.source_id = m.id
        WHERE m.id = $1 AND m.organization_id = $2
        """,
        material_id,
        org_id,
    )


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
SELECT m.brand_profile_id, m.id, m.usage_count, m.last_used_at, m.created_at, m.content_pillar,
       (SELECT avg(p.engagement_rate) FROM posts p
         WHERE p.material_id = m.id AND p.organization_id = m.organization_id
           AND p.engagement_rate IS NOT NULL) AS engagement
FROM materials m
JOIN unnest($1::uuid[], $2::uuid[]) AS b(brand_profile_id, organization_id)
  ON m.brand_profile_id = b.brand_profile_id AND m.organization_id = b.organization_id
WHERE m.status = 'READY' AND m.deleted_at IS NULL
  AND (m.max_uses IS NULL OR m.usage_count < m.max_uses)
  -- not while a pending post of it is in flight (its run has not ended, and was not lost long ago)
  AND NOT EXISTS (
      SELECT 1 FROM pending_posts pp
      WHERE pp.material_id = m.id AND pp.ended_at IS NULL AND pp.created_at > now() - make_interval(hours => $3)
  )
"""


async def selectable_candidates(
    conn: Conn, brands: Collection[tuple[uuid.UUID, uuid.UUID]], *, in_flight_hours: int = 168
) -> dict[uuid.UUID, list[Candidate]]:
    """The selectable materials of each of these (brand id, its organization id), by brand
    (the brands and organizations are checked by the caller; a brand with none is absent).

    A draft whose run never ended (a lost ScheduleRunCompleted) holds its material for
    `in_flight_hours` at most."""
    if not brands:
        return {}
    brand_ids, org_ids = _columns(brands, 2)
    rows = await conn.fetch(SELECTABLE, brand_ids, org_ids, in_flight_hours)
    found: dict[uuid.UUID, list[Candidate]] = {}
    for r in rows:
        found.setdefault(r["brand_profile_id"], []).append(
            Candidate(
                material_id=r["id"],
                usage_count=r["usage_count"],
                last_used_at=r["last_used_at"],
                created_at=r["created_at"],
                content_pillar=r["content_pillar"],
                engagement=float(r["engagement"]) if r["engagement"] is not None else None,
            )
        )
    return found


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


async def recent_pillar_counts(
    conn: Conn, brand_ids: Collection[uuid.UUID], since: datetime
) -> dict[uuid.UUID, dict[str | None, int]]:
    """Drafts of each brand per material pillar since `since` (as submitted, matched later)."""
    if not brand_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT brand_profile_id, content_pillar, count(*) AS n FROM pending_posts
        WHERE brand_profile_id = ANY($1::uuid[]) AND created_at >= $2 GROUP BY brand_profile_id, content_pillar
        """,
        list(brand_ids),
        since,
    )
    counts: dict[uuid.UUID, dict[str | None, int]] = {brand_id: {} for brand_id in brand_ids}
    for r in rows:
        counts[r["brand_profile_id"]][r["content_pillar"]] = int(r["n"])
    return counts


async def angle_stats(
    conn: Conn, brands: Collection[tuple[uuid.UUID, uuid.UUID]]
) -> dict[uuid.UUID, dict[Angle, AngleStats]]:
    """What each angle earned in the posts of each of these (brand id, its organization id),
    by brand (brands without any map to {}): only the organization's own posts count."""
    if not brands:
        return {}
    brand_ids, org_ids = _columns(brands, 2)
    rows = await conn.fetch(
        """
        SELECT p.brand_profile_id, p.angle, count(*) AS n, avg(p.engagement_rate) AS mean,
               coalesce(stddev_pop(p.engagement_rate), 0) AS sd
        FROM posts p JOIN unnest($1::uuid[], $2::uuid[]) AS b(brand_profile_id, organization_id)
          ON p.brand_profile_id = b.brand_profile_id AND p.organization_id = b.organization_id
        WHERE p.engagement_rate IS NOT NULL
        GROUP BY p.brand_profile_id, p.angle
        """,
        brand_ids,
        org_ids,
    )
    stats: dict[uuid.UUID, dict[Angle, AngleStats]] = {brand_id: {} for brand_id, _ in brands}
    for r in rows:
        stats[r["brand_profile_id"]][Angle(r["angle"])] = AngleStats(int(r["n"]), float(r["mean"]), float(r["sd"]))
    return stats


# A use of a material, counted once per pending post: the `counted` CTE names the materials
# (`material_id`) of the pending posts whose use this statement counts. A READY material
# becomes USED once its uses reach max_uses, as status_after_use decides (kept identical).
_COUNT_USE = """
UPDATE materials m SET usage_count = m.usage_count + 1,
    last_used_at = greatest(coalesce(m.last_used_at, {used_at}), {used_at}),
    status = CASE WHEN {used} THEN 'USED' ELSE m.status END,
    failure_reason = CASE WHEN {used} THEN NULL ELSE m.failure_reason END,
    updated_at = now()
FROM counted WHERE m.id = counted.material_id
"""
_USED = "m.status = 'READY' AND m.max_uses IS NOT NULL AND m.usage_count + 1 >= m.max_uses"


def _count_use(used_at: str) -> str:
    return _COUNT_USE.format(used_at=used_at, used=_USED)


# --- runs and drafts ----------------------------------------------------------------------------------


class Run(NamedTuple):
    """A run as content records it when it starts."""

    run_id: uuid.UUID
    organization_id: uuid.UUID
    schedule_id: uuid.UUID
    brand_profile_id: uuid.UUID
    due_at: datetime


async def start_runs(conn: Conn, runs: Sequence[Run]) -> set[uuid.UUID]:
    """Record the runs; returns those not handled before (one result per run). Inserted in
    run id order, so two batches holding the same runs wait for each other instead of
    deadlocking."""
    if not runs:
        return set()
    in_id_order = sorted(runs, key=lambda run: run.run_id.int)
    run_ids, org_ids, schedule_ids, brand_ids, due_ats = _columns(in_id_order, 5)
    rows = await conn.fetch(
        """
        INSERT INTO runs (run_id, organization_id, schedule_id, brand_profile_id, due_at, result)
        SELECT r, o, s, b, d, 'STARTED'
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::timestamptz[]) AS u(r, o, s, b, d)
        ON CONFLICT (run_id) DO NOTHING RETURNING run_id
        """,
        run_ids,
        org_ids,
        schedule_ids,
        brand_ids,
        due_ats,
    )
    return {r["run_id"] for r in rows}


async def finish_runs(conn: Conn, results: Mapping[uuid.UUID, str]) -> None:
    """Each run's result: DRAFTED or the skip reason."""
    if not results:
        return
    run_ids = sorted(results, key=lambda r: r.int)
    await conn.execute(
        "UPDATE runs SET result = u.result FROM unnest($1::uuid[], $2::text[]) AS u(run_id, result) "
        "WHERE runs.run_id = u.run_id",
        run_ids,
        [results[r] for r in run_ids],
    )


async def lock_organizations(conn: Conn, org_ids: Collection[uuid.UUID]) -> None:
    """Until the transaction ends, no other run of these organizations drafts (its duplicate
    check must see these runs' drafts). The locks are taken in one fixed order (of their
    keys), so concurrent batches and replicas cannot deadlock on them."""
    if not org_ids:
        return
    await conn.execute(
        """
        SELECT pg_advisory_xact_lock($1, k)
        FROM (SELECT DISTINCT hashtext(o) AS k FROM unnest($2::text[]) AS o ORDER BY k) AS keys
        """,
        _RUN_LOCK_NAMESPACE,
        [str(org_id) for org_id in org_ids],
    )


PENDING_POST_COLUMNS = (
    "id",
    "run_id",
    "organization_id",
    "brand_profile_id",
    "schedule_id",
    "material_id",
    "content_pillar",
    "content",
    "hashtags",
    "media_urls",
    "platforms",
    "angle",
    "angle_reason",
    "max_similarity",
    "requires_approval",
    "due_at",
)


async def insert_pending_posts(conn: Conn, posts: Sequence[Mapping[str, Any]]) -> None:
    """Insert drafts (dicts of PENDING_POST_COLUMNS): one pipelined round trip for all."""
    if not posts:
        return
    placeholders = ", ".join(f"${i}" for i in range(1, len(PENDING_POST_COLUMNS) + 1))
    await conn.executemany(
        f"INSERT INTO pending_posts ({', '.join(PENDING_POST_COLUMNS)}) VALUES ({placeholders})",
        [tuple(post[c] for c in PENDING_POST_COLUMNS) for post in posts],
    )


async def end_run(
    conn: Conn, run_id: uuid.UUID, org_id: uuid.UUID, outcome: str, ended_at: datetime, *, published: bool
) -> bool:
    """The run ended, in one statement: its pending post is no longer in flight (its material
    selectable again). If it published, its use of the material is counted (once per pending
    post: PostPublished may have counted it already); if not, the draft's embedding is
    deleted. False when the organization has no pending post of that run.

    The pending post is locked first, so `was_counted` is its latest value (a concurrent
    PostPublished's count is seen, not counted twice)."""
    ended = await conn.fetchval(
        f"""
        WITH locked AS (
            SELECT id, use_counted FROM pending_posts WHERE run_id = $1 AND organization_id = $2 FOR UPDATE
        ),
        ended AS (
            UPDATE pending_posts p SET ended_at = coalesce(p.ended_at, $4::timestamptz),
                outcome = coalesce(p.outcome, $3), use_counted = p.use_counted OR $5
            FROM locked WHERE p.id = locked.id
            RETURNING p.id, p.material_id, locked.use_counted AS was_counted
        ),
        counted AS (SELECT material_id FROM ended WHERE $5 AND NOT was_counted),
        used AS ({_count_use("$4::timestamptz")}),
        forgotten AS (
            DELETE FROM content_embeddings
            WHERE NOT $5 AND kind = 'PENDING_POST' AND source_id IN (SELECT id FROM ended)
        )
        SELECT count(*) FROM ended
        """,
        run_id,
        org_id,
        outcome,
        ended_at,
        published,
    )
    return bool(ended)


# --- published posts and engagement ----------------------------------------------------------------------


class Published(NamedTuple):
    """What a PostPublished found: whether content knows its pending post in the
    organization, and the first kind of id it names that is another organization's."""

    known: bool
    of_another: str | None


# The ids a PostPublished names, with the parameters of publish_post holding them.
_PUBLISHED_IDS = (("post", 1), ("pending post", 4), ("material", 5), ("brand", 3), ("schedule", 9), ("run", 10))


async def publish_post(conn: Conn, org_id: uuid.UUID, data: Any) -> Published:
    """A PostPublished in one statement: the post is recorded; if the pending post it names
    is the organization's, its use of the material is counted (once per pending post) and
    the draft's embedding is kept as the post's, by its first post: the posts of a pending post
    on every platform share the draft's text and vector, and each more copy would only cost
    an HNSW index insert (the most expensive statement of a run).

    The same statement says whether an id it names is another organization's: the caller
    then refuses the event, and its transaction's rollback undoes the statement."""
    row = await conn.fetchrow(
        f"""
        WITH post AS (
            INSERT INTO posts (post_id, organization_id, brand_profile_id, pending_post_id, material_id,
                               platform, angle, published_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (post_id) DO UPDATE SET pending_post_id = EXCLUDED.pending_post_id,
                material_id = EXCLUDED.material_id, published_at = EXCLUDED.published_at, updated_at = now()
            WHERE posts.organization_id = EXCLUDED.organization_id
        ),
        pending AS (
            SELECT id, brand_profile_id, material_id FROM pending_posts WHERE id = $4 AND organization_id = $2
        ),
        counted AS (
            UPDATE pending_posts SET use_counted = true
            WHERE id = $4 AND organization_id = $2 AND NOT use_counted
            RETURNING material_id
        ),
        used AS ({_count_use("$8::timestamptz")}),
        kept AS (
            INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                                            content_hash, material_hash, embedding, created_at)
            SELECT $2, p.brand_profile_id, 'POST', $1, p.material_id, e.content_hash, e.material_hash,
                   e.embedding, now()
            FROM pending p
            JOIN content_embeddings e ON e.kind = 'PENDING_POST' AND e.source_id = p.id
            WHERE NOT EXISTS (
                SELECT FROM posts q WHERE q.pending_post_id = p.id AND q.organization_id = $2 AND q.post_id <> $1
            )
            ON CONFLICT (kind, source_id) DO NOTHING
        )
        SELECT EXISTS (SELECT FROM pending) AS known, {_first_of_another(_PUBLISHED_IDS, 2)} AS of_another
        """,
        data.post_id,
        org_id,
        data.brand_profile_id,
        data.pending_post_id,
        data.material_id,
        str(data.platform),
        str(data.angle),
        data.published_at,
        data.schedule_id,
        data.run_id,
    )
    assert row is not None
    return Published(row["known"], row["of_another"])


async def record_engagement(conn: Conn, org_id: uuid.UUID, data: Any) -> str | None:
    """Record a post's engagement, in one statement that also says the first kind of id it
    names (post, brand) that is another organization's: the caller then refuses the event,
    and its transaction's rollback undoes the statement."""
    of_another: str | None = await conn.fetchval(
        f"""
        WITH recorded AS (
            INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle, engagement_rate,
                               impressions)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (post_id) DO UPDATE SET engagement_rate = EXCLUDED.engagement_rate,
                impressions = EXCLUDED.impressions, updated_at = now()
            WHERE posts.organization_id = EXCLUDED.organization_id
        )
        SELECT {_first_of_another([("post", 1), ("brand", 3)], 2)}
        """,
        data.post_id,
        org_id,
        data.brand_profile_id,
        str(data.platform),
        str(data.angle),
        data.engagement_rate,
        data.impressions,
    )
    return of_another


# --- embeddings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embedding:
    """A row of content_embeddings: a material, a draft (PENDING_POST) or a published POST."""

    organization_id: uuid.UUID
    brand_profile_id: uuid.UUID
    kind: str
    source_id: uuid.UUID
    material_id: uuid.UUID
    content_hash: str
    material_hash: str
    embedding: Sequence[float]
    created_at: datetime | None = None


async def insert_embedding(conn: Conn, row: Embedding) -> None:
    await insert_embeddings(conn, [row])


async def insert_embeddings(conn: Conn, rows: Sequence[Embedding]) -> None:
    """Insert embeddings (one kept per kind and source): one pipelined round trip for all."""
    if not rows:
        return
    await conn.executemany(
        """
        INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                                        content_hash, material_hash, embedding, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
        ON CONFLICT (kind, source_id) DO NOTHING
        """,
        [
            (
                r.organization_id,
                r.brand_profile_id,
                r.kind,
                r.source_id,
                r.material_id,
                r.content_hash,
                r.material_hash,
                list(r.embedding),
                r.created_at,
            )
            for r in rows
        ],
    )


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
