"""SQL of published posts and their engagement: a PostPublished and an EngagementUpdated are
one statement each, and what each angle earned is read back for the next runs."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import NamedTuple

from hopcast_content.adapters.materials import count_use
from hopcast_content.adapters.sql import Repository, columns, first_of_another
from hopcast_content.domain.angles import AngleStats
from hopcast_shared.contract import Angle, EngagementUpdated, PostPublished


class Published(NamedTuple):
    """What a PostPublished found: whether content knows its pending post in the
    organization, and the first kind of id it names that is another organization's."""

    known: bool
    of_another: str | None


# The ids a PostPublished names, with the parameters of `publish` holding them.
_PUBLISHED_IDS = (("post", 1), ("pending post", 4), ("material", 5), ("brand", 3), ("schedule", 9), ("run", 10))


class Posts(Repository):
    async def publish(self, org_id: uuid.UUID, data: PostPublished) -> Published:
        """A PostPublished in one statement: the post is recorded; if the pending post it names
        is the organization's, its use of the material is counted (once per pending post) and
        the draft's embedding is kept as the post's, by its first post: the posts of a pending
        post on every platform share the draft's text and vector, and each more copy would only
        cost an insert (and, where an HNSW index was created for large organizations, its graph
        search).

        The same statement says whether an id it names is another organization's: the caller
        then refuses the event, and its transaction's rollback undoes the statement."""
        row = await self.conn.fetchrow(
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
            used AS ({count_use("$8::timestamptz")}),
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
            SELECT EXISTS (SELECT FROM pending) AS known, {first_of_another(_PUBLISHED_IDS, 2)} AS of_another
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

    async def record_engagement(self, org_id: uuid.UUID, data: EngagementUpdated) -> str | None:
        """Record a post's engagement, in one statement that also says the first kind of id it
        names (post, brand) that is another organization's: the caller then refuses the event,
        and its transaction's rollback undoes the statement."""
        of_another: str | None = await self.conn.fetchval(
            f"""
            WITH recorded AS (
                INSERT INTO posts (post_id, organization_id, brand_profile_id, platform, angle, engagement_rate,
                                   impressions)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (post_id) DO UPDATE SET engagement_rate = EXCLUDED.engagement_rate,
                    impressions = EXCLUDED.impressions, updated_at = now()
                WHERE posts.organization_id = EXCLUDED.organization_id
            )
            SELECT {first_of_another([("post", 1), ("brand", 3)], 2)}
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

    async def set_deleted(self, post_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        """Soft-delete (keeping the first deletion time) or restore the organization's post;
        False when the organization has no such post."""
        status = await self.conn.execute(
            """
            UPDATE posts SET deleted_at = CASE WHEN $3 THEN coalesce(deleted_at, now()) END, updated_at = now()
            WHERE post_id = $1 AND organization_id = $2
            """,
            post_id,
            org_id,
            deleted,
        )
        return bool(status != "UPDATE 0")

    async def angle_stats(
        self, brands: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[uuid.UUID, dict[Angle, AngleStats]]:
        """What each angle earned in the posts of each of these (brand id, its organization id),
        by brand (brands without any map to {}): only the organization's own posts count, and
        not those deleted.

        One row per brand and angle, from the running totals that triggers on posts keep
        (migration 0009): the count, mean and population standard deviation of the counted
        posts' engagement rates, whatever the brand's history. Each rate enters the totals at
        float8's 15 significant digits, so the mean is within about 1e-14 (relative) of the
        float aggregate's, and a spread that is all but nil within 1e-9 of the rates' scale
        (test_angle_totals.py holds both)."""
        if not brands:
            return {}
        brand_ids, org_ids = columns(brands, 2)
        rows = await self.conn.fetch(
            """
            SELECT t.brand_profile_id, t.angle, t.n, (t.total / t.n)::float8 AS mean,
                   (sqrt(greatest(t.n * t.squares - t.total * t.total, 0)) / t.n)::float8 AS sd
            FROM unnest($1::uuid[], $2::uuid[]) AS b(brand_profile_id, organization_id)
            JOIN angle_totals t USING (brand_profile_id, organization_id)
            WHERE t.n > 0
            """,
            brand_ids,
            org_ids,
        )
        stats: dict[uuid.UUID, dict[Angle, AngleStats]] = {brand_id: {} for brand_id, _ in brands}
        for r in rows:
            stats[r["brand_profile_id"]][Angle(r["angle"])] = AngleStats(int(r["n"]), float(r["mean"]), float(r["sd"]))
        return stats
