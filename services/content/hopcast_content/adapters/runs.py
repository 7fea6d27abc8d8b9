"""SQL of runs and their drafts: a run recorded once whatever the deliveries, one
organization's runs serialised, drafts written in one round trip, and the end of a run."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from hopcast_content.adapters.dedup import insert_embeddings
from hopcast_content.adapters.materials import count_use
from hopcast_content.adapters.sql import Repository, columns
from hopcast_content.domain.embedding import Embedding

# Serialises the runs of one organization (its duplicate check must see the previous draft).
_RUN_LOCK_NAMESPACE = 0x636F6E74  # "cont"


class Run(NamedTuple):
    """A run as content records it when it starts."""

    run_id: uuid.UUID
    organization_id: uuid.UUID
    schedule_id: uuid.UUID
    brand_profile_id: uuid.UUID
    due_at: datetime


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
    "texts",
    "media",
    "platforms_left_out",
)


class Runs(Repository):
    async def start(self, runs: Sequence[Run]) -> set[uuid.UUID]:
        """Record the runs; returns those not handled before (one result per run). Inserted in
        run id order, so two batches holding the same runs wait for each other instead of
        deadlocking."""
        if not runs:
            return set()
        in_id_order = sorted(runs, key=lambda run: run.run_id.int)
        run_ids, org_ids, schedule_ids, brand_ids, due_ats = columns(in_id_order, 5)
        rows = await self.conn.fetch(
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

    async def of_another(self, runs: Collection[tuple[uuid.UUID, uuid.UUID]]) -> set[uuid.UUID]:
        """Of these (run id, organization id), the run ids another organization has."""
        run_ids, org_ids = columns(runs, 2)
        rows = await self.conn.fetch(
            """
            SELECT r.run_id FROM runs r JOIN unnest($1::uuid[], $2::uuid[]) AS k(run_id, organization_id)
              ON r.run_id = k.run_id AND r.organization_id <> k.organization_id
            """,
            run_ids,
            org_ids,
        )
        return {r["run_id"] for r in rows}

    async def finish(self, results: Mapping[uuid.UUID, str]) -> None:
        """Each run's result: DRAFTED or the skip reason."""
        if not results:
            return
        run_ids = sorted(results, key=lambda r: r.int)
        await self.conn.execute(
            "UPDATE runs SET result = u.result FROM unnest($1::uuid[], $2::text[]) AS u(run_id, result) "
            "WHERE runs.run_id = u.run_id",
            run_ids,
            [results[r] for r in run_ids],
        )

    async def lock_organizations(self, org_ids: Collection[uuid.UUID]) -> None:
        """Until the transaction ends, no other run of these organizations drafts (its duplicate
        check must see these runs' drafts). The locks are taken in one fixed order (of their
        keys), so concurrent batches and replicas cannot deadlock on them."""
        if not org_ids:
            return
        await self.conn.execute(
            """
            SELECT pg_advisory_xact_lock($1, k)
            FROM (SELECT DISTINCT hashtext(o) AS k FROM unnest($2::text[]) AS o ORDER BY k) AS keys
            """,
            _RUN_LOCK_NAMESPACE,
            [str(org_id) for org_id in org_ids],
        )

    async def recent_pillar_counts(
        self, brand_ids: Collection[uuid.UUID], since: datetime
    ) -> dict[uuid.UUID, dict[str | None, int]]:
        """Drafts of each brand per material pillar since `since` (as submitted, matched later)."""
        if not brand_ids:
            return {}
        rows = await self.conn.fetch(
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

    async def insert_pending_posts(self, posts: Sequence[Mapping[str, Any]]) -> None:
        """Insert drafts (dicts of PENDING_POST_COLUMNS): one pipelined round trip for all."""
        if not posts:
            return
        placeholders = ", ".join(f"${i}" for i in range(1, len(PENDING_POST_COLUMNS) + 1))
        await self.conn.executemany(
            f"INSERT INTO pending_posts ({', '.join(PENDING_POST_COLUMNS)}) VALUES ({placeholders})",
            [tuple(post[c] for c in PENDING_POST_COLUMNS) for post in posts],
        )

    async def drafted_texts(self, org_id: uuid.UUID, pending_post_id: uuid.UUID) -> dict[str, str] | None:
        """The exact text drafted for each platform of one of the organization's pending posts
        (None when it has no such pending post)."""
        texts: dict[str, str] | None = await self.conn.fetchval(
            "SELECT texts FROM pending_posts WHERE id = $1 AND organization_id = $2", pending_post_id, org_id
        )
        return texts

    async def drafted_post(self, org_id: uuid.UUID, pending_post_id: uuid.UUID) -> tuple[uuid.UUID, list[str]] | None:
        """The run and platforms of one of the organization's pending posts (None when it has none)."""
        row = await self.conn.fetchrow(
            "SELECT run_id, platforms FROM pending_posts WHERE id = $1 AND organization_id = $2",
            pending_post_id,
            org_id,
        )
        return None if row is None else (row["run_id"], list(row["platforms"]))

    async def insert_drafts(self, posts: Sequence[Mapping[str, Any]], embeddings: Sequence[Embedding]) -> None:
        """The drafts and their embeddings: a round trip each."""
        await self.insert_pending_posts(posts)
        await insert_embeddings(self.conn, embeddings)

    async def end(
        self, run_id: uuid.UUID, org_id: uuid.UUID, outcome: str, ended_at: datetime, *, published: bool
    ) -> bool:
        """The run ended, in one statement: its pending post is no longer in flight (its material
        selectable again). If it published, its use of the material is counted (once per pending
        post: PostPublished may have counted it already); if not, the draft's embedding is
        deleted. False when the organization has no pending post of that run.

        The pending post is locked first, so `was_counted` is its latest value (a concurrent
        PostPublished's count is seen, not counted twice)."""
        ended = await self.conn.fetchval(
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
            used AS ({count_use("$4::timestamptz")}),
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
