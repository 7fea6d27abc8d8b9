"""SQL of materials: their lifecycle, which are selectable for a run, and the count of a use."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

import asyncpg

from hopcast_content.adapters.dedup import insert_embeddings
from hopcast_content.adapters.sql import Repository, columns
from hopcast_content.domain.drafting import MaterialText, MediaRef
from hopcast_content.domain.embedding import Embedding
from hopcast_content.domain.materials import Material, MaterialStatus
from hopcast_content.domain.selection import Candidate
from hopcast_shared import projections

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


def count_use(used_at: str) -> str:
    """The UPDATE counting a use of the materials a `counted` CTE names, used at `used_at`
    (an SQL expression), for a statement's CTE."""
    return _COUNT_USE.format(used_at=used_at, used=_USED)


SELECTABLE = """
SELECT m.brand_profile_id, m.id, m.usage_count, m.last_used_at, m.created_at, m.content_pillar, m.media, m.media_urls,
       (SELECT avg(p.engagement_rate) FROM posts p
         WHERE p.material_id = m.id AND p.organization_id = m.organization_id
           AND p.engagement_rate IS NOT NULL AND p.deleted_at IS NULL) AS engagement
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


def _media(row: asyncpg.Record) -> tuple[MediaRef, ...]:
    """A material's media; a row from before media were kept has its URLs alone."""
    if row["media"]:
        return tuple(MediaRef(m["url"], m.get("alt_text"), m.get("mime_type")) for m in row["media"])
    return tuple(MediaRef(url) for url in row["media_urls"] or ())


def _material(row: asyncpg.Record, embedding: Sequence[float] | None = None) -> Material:
    text = MaterialText(
        material_id=row["id"],
        type=row["type"],
        title=row["title"],
        body=row["body"],
        media=_media(row),
        content_pillar=row["content_pillar"],
    )
    return Material(text, row["organization_id"], row["brand_profile_id"], embedding)


class Materials(Repository):
    async def owner(self, material_id: uuid.UUID) -> uuid.UUID | None:
        owner: uuid.UUID | None = await self.conn.fetchval(
            "SELECT organization_id FROM materials WHERE id = $1", material_id
        )
        return owner

    async def insert(self, values: dict[str, Any]) -> bool:
        """Insert an UPLOADED material; False when that id exists already."""
        status = await self.conn.execute(
            """
            INSERT INTO materials (id, organization_id, brand_profile_id, type, title, body, media_urls,
                                   content_pillar, max_uses, media)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
            # Media with alt texts; given only URLs (an older caller), media without them.
            values.get("media") or [MediaRef(url).as_json() for url in values["media_urls"]],
        )
        return status == "INSERT 0 1"

    async def to_draft(self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]) -> dict[uuid.UUID, Material]:
        """The materials of these (material id, its organization id), each with its own
        embedding (None if it has none), by id: one statement for all; one of another
        organization, or none, is absent."""
        if not keys:
            return {}
        material_ids, org_ids = columns(keys, 2)
        rows = await self.conn.fetch(
            """
            SELECT m.*, e.embedding AS material_embedding
            FROM unnest($1::uuid[], $2::uuid[]) AS k(id, organization_id)
            JOIN materials m ON m.id = k.id AND m.organization_id = k.organization_id
            LEFT JOIN content_embeddings e ON e.kind = 'MATERIAL' AND e.source_id = m.id
            """,
            material_ids,
            org_ids,
        )
        return {
            r["id"]: _material(r, e.to_list() if (e := r["material_embedding"]) is not None else None) for r in rows
        }

    async def get(self, material_id: uuid.UUID, org_id: uuid.UUID, *, lock: bool = False) -> Material | None:
        row = await self.conn.fetchrow(
            "SELECT * FROM materials WHERE id = $1 AND organization_id = $2" + (" FOR UPDATE" if lock else ""),
            material_id,
            org_id,
        )
        return _material(row) if row is not None else None

    async def set_status(
        self,
        material_id: uuid.UUID,
        status: MaterialStatus,
        *,
        failure_reason: str | None = None,
        content_hash: str | None = None,
    ) -> None:
        await self.conn.execute(
            """
            UPDATE materials SET status = $2, failure_reason = $3, content_hash = coalesce($4, content_hash),
                updated_at = now()
            WHERE id = $1
            """,
            material_id,
            status.value,
            failure_reason,
            content_hash,
        )

    async def ready(self, embedding: Embedding) -> None:
        """The material is READY: its embedding is kept and its content hash recorded."""
        await insert_embeddings(self.conn, [embedding])
        await self.set_status(embedding.material_id, MaterialStatus.READY, content_hash=embedding.content_hash)

    async def set_deleted(self, material_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        return await projections.set_deleted(self.conn, "materials", material_id, org_id, deleted)

    async def claim_waiting(self, limit: int) -> list[Material]:
        """UPLOADED materials no other replica is processing (in the caller's transaction)."""
        rows = await self.conn.fetch(
            """
            SELECT * FROM materials WHERE status = 'UPLOADED' AND deleted_at IS NULL
            ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
            """,
            limit,
        )
        return [_material(r) for r in rows]

    async def selectable_candidates(
        self, brands: Collection[tuple[uuid.UUID, uuid.UUID]], *, in_flight_hours: int = 168
    ) -> dict[uuid.UUID, list[Candidate]]:
        """The selectable materials of each of these (brand id, its organization id), by brand
        (the brands and organizations are checked by the caller; a brand with none is absent).

        A draft whose run never ended (a lost ScheduleRunCompleted) holds its material for
        `in_flight_hours` at most."""
        if not brands:
            return {}
        brand_ids, org_ids = columns(brands, 2)
        rows = await self.conn.fetch(SELECTABLE, brand_ids, org_ids, in_flight_hours)
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
                    media=_media(r),
                )
            )
        return found

    async def counts(self, brand_id: uuid.UUID) -> dict[str, int]:
        """The brand's materials by status (DELETED, whatever their status, and IN_FLIGHT too)."""
        rows = await self.conn.fetch(
            """
            SELECT CASE WHEN deleted_at IS NOT NULL THEN 'DELETED' ELSE status END AS status, count(*) AS n
            FROM materials WHERE brand_profile_id = $1 GROUP BY 1
            """,
            brand_id,
        )
        counts = {r["status"]: int(r["n"]) for r in rows}
        counts["IN_FLIGHT"] = int(
            await self.conn.fetchval(
                "SELECT count(DISTINCT material_id) FROM pending_posts "
                "WHERE brand_profile_id = $1 AND ended_at IS NULL",
                brand_id,
            )
        )
        return counts

    async def titles(self, material_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str | None]:
        rows = await self.conn.fetch("SELECT id, title FROM materials WHERE id = ANY($1)", list(material_ids))
        return {r["id"]: r["title"] for r in rows}
