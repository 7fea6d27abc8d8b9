"""SQL of published posts: writing them, their engagement, and the read models of the HTTP API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg

from hopcast_publisher.domain.posts import PublishedPost
from hopcast_publisher.domain.publishing import MediaOfPost
from hopcast_shared.db import Conn

POST_COLUMNS = (
    "id",
    "organization_id",
    "pending_post_id",
    "run_id",
    "schedule_id",
    "brand_profile_id",
    "material_id",
    "social_account_id",
    "platform",
    "angle",
    "content",
    "external_id",
    "external_url",
    "published_at",
    "media",
    "hashtags",
    "angle_reason",
)
_POST_TYPES = (
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "uuid",
    "text",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",  # media: JSON text, cast below (unnest would flatten an array of arrays)
    "text",  # hashtags: JSON text too, made an array below
    "text",
)

_JSON_COLUMNS = frozenset({"media", "hashtags"})
_AS_SQL = {
    "media": "u.media::jsonb",
    "hashtags": "coalesce(ARRAY(SELECT jsonb_array_elements_text(u.hashtags::jsonb)), '{}')",
}
_PUBLISHED_POST_FIELDS = tuple(PublishedPost.__dataclass_fields__)


class PostRepository:
    """Posts, one per pending post and platform, and what is read of them."""

    async def insert_posts(self, conn: Conn, posts: Sequence[dict[str, Any]]) -> None:
        """Posts in one statement; a post already there for its pending post and platform is kept."""
        if not posts:
            return
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_POST_TYPES))
        await conn.execute(
            f"""
            INSERT INTO posts ({", ".join(POST_COLUMNS)})
            SELECT {", ".join(_AS_SQL.get(c, f"u.{c}") for c in POST_COLUMNS)}
            FROM unnest({arrays}) AS u({", ".join(POST_COLUMNS)})
            ON CONFLICT (pending_post_id, platform) DO NOTHING
            """,
            *([json.dumps(p.get(c, [])) if c in _JSON_COLUMNS else p.get(c) for p in posts] for c in POST_COLUMNS),
        )

    async def post(self, conn: Conn, post_id: uuid.UUID, *, lock: bool = False) -> PublishedPost | None:
        suffix = " FOR UPDATE" if lock else ""
        row = await conn.fetchrow(f"SELECT * FROM posts WHERE id = $1{suffix}", post_id)
        if row is None:
            return None
        fields = {name: row[name] for name in _PUBLISHED_POST_FIELDS if name not in ("media", "hashtags")}
        return PublishedPost(
            **fields,
            media=tuple(MediaOfPost.from_json(m) for m in row["media"]),
            hashtags=tuple(row["hashtags"]),
        )

    async def posts_of_pending_post(self, conn: Conn, pending_post_id: uuid.UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT * FROM posts WHERE pending_post_id = $1 ORDER BY platform", pending_post_id
        )
        return rows

    async def record_engagement(
        self,
        conn: Conn,
        post_id: uuid.UUID,
        *,
        likes: int,
        comments: int,
        shares: int,
        impressions: int,
        rate: float,
        observed_at: datetime,
    ) -> None:
        await conn.execute(
            """
            UPDATE posts SET likes = $2, comments = $3, shares = $4, impressions = $5, engagement_rate = $6,
                engagement_observed_at = $7, updated_at = now()
            WHERE id = $1
            """,
            post_id,
            likes,
            comments,
            shares,
            impressions,
            rate,
            observed_at,
        )

    async def set_post_deleted(self, conn: Conn, post_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        """Soft-delete (or restore) the organization's post; False when it has no such post."""
        status = await conn.execute(
            """
            UPDATE posts SET deleted_at = CASE WHEN $3 THEN coalesce(deleted_at, now()) END, updated_at = now()
            WHERE id = $1 AND organization_id = $2
            """,
            post_id,
            org_id,
            deleted,
        )
        return bool(status != "UPDATE 0")

    async def of_another_organization(self, conn: Conn, post_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM posts WHERE id = $1 AND organization_id <> $2)", post_id, org_id
        )
        return found

    async def angle_performance(self, conn: Conn, brand_id: uuid.UUID, since: datetime) -> list[asyncpg.Record]:
        """Engagement per angle of a brand's posts published since `since` (deleted ones left out)."""
        return await self._performance(conn, "angle", "brand_profile_id", brand_id, since)

    async def platform_performance(self, conn: Conn, org_id: uuid.UUID, since: datetime) -> list[asyncpg.Record]:
        """Engagement per platform of an organization's posts published since `since`."""
        return await self._performance(conn, "platform", "organization_id", org_id, since)

    async def posts_by_platform(self, conn: Conn, org_id: uuid.UUID, since: datetime) -> dict[str, int]:
        """How many of an organization's posts (not deleted) were published since `since`, per platform."""
        rows = await conn.fetch(
            """
            SELECT platform, count(*) AS posts FROM posts
            WHERE organization_id = $1 AND published_at >= $2 AND deleted_at IS NULL
            GROUP BY platform ORDER BY platform
            """,
            org_id,
            since,
        )
        return {r["platform"]: int(r["posts"]) for r in rows}

    async def _performance(
        self,
        conn: Conn,
        by: Literal["angle", "platform"],
        scope: Literal["brand_profile_id", "organization_id"],
        scope_id: uuid.UUID,
        since: datetime,
    ) -> list[asyncpg.Record]:
        # `by` and `scope` are our own column names, never input.
        rows: list[asyncpg.Record] = await conn.fetch(
            f"""
            SELECT {by}, count(*) AS posts, sum(likes) AS likes, sum(comments) AS comments, sum(shares) AS shares,
                   sum(impressions) AS impressions, avg(engagement_rate) AS avg_engagement_rate
            FROM posts
            WHERE {scope} = $1 AND published_at >= $2 AND deleted_at IS NULL
            GROUP BY {by} ORDER BY avg(engagement_rate) DESC, {by}
            """,
            scope_id,
            since,
        )
        return rows
