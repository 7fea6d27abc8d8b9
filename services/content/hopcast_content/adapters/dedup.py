"""The content_embeddings table: the vectors kept, and the near-duplicate check over them:
how close a draft (and its material) comes to what the same organization drafted or
published in the window. Never across organizations: every statement filters on
organization_id.

Three steps, cheapest first:

All of it is one statement (`CHECK`) while the window is small enough for an exact scan.

1. Exact copies by hash (the fast path): the draft's normalised text, or its material's,
   equals one drafted in the window. Always caught, whatever the embedder.
2. The nearest drafts and posts by cosine similarity. An organization's window holds a
   few thousand rows at most, so the default is an exact scan over the btree on
   (organization_id, created_at): exact, and faster than the HNSW index under such a
   selective filter (HNSW returns ef_search candidates before filtering, most of them
   other organizations'). Past `exact_max_rows` rows the HNSW index is used with
   pgvector's iterative scan (relaxed order, re-sorted), which keeps searching until
   enough rows pass the filter. The migrations do not create that index (`HNSW_INDEX`):
   every insert would pay its graph search, and only an organization past
   `exact_max_rows` reads it; without it the same query is an exact scan of the window.
3. The material against the other materials drafted in the window (a copy of a material
   drafted under another angle reads differently but is the same post).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hopcast_content.adapters.sql import Repository
from hopcast_content.config import ContentSettings
from hopcast_content.domain.duplicates import DraftToCheck, Verdict
from hopcast_content.domain.embedding import Embedding
from hopcast_shared.db import Conn

DRAFT_KINDS = ("PENDING_POST", "POST")

# The index for organizations whose window outgrows an exact scan (more than
# CONTENT_DEDUP_EXACT_MAX_ROWS rows), which the HNSW path reads. Not in the migrations (0007
# dropped it): each insert paid its graph search (about 2.25 ms of CPU at 233,800 rows against
# 0.13-0.25 without) for every organization. A deployment with such organizations creates it (on a live
# database with CONCURRENTLY, see the service's README); the check then uses it.
HNSW_INDEX = (
    "CREATE INDEX IF NOT EXISTS content_embeddings_hnsw ON content_embeddings USING hnsw (embedding vector_cosine_ops)"
)


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


class SearchMode(StrEnum):
    AUTO = "auto"
    EXACT = "exact"
    HNSW = "hnsw"


@dataclass(frozen=True)
class Neighbour:
    source_id: uuid.UUID
    kind: str
    similarity: float


EXACT_NEAREST = """
WITH window_rows AS MATERIALIZED (
    SELECT source_id, kind, embedding FROM content_embeddings
    WHERE organization_id = $1 AND created_at >= $2 AND kind <> 'MATERIAL'
)
SELECT source_id, kind, 1 - (embedding <=> $3) AS similarity
FROM window_rows ORDER BY embedding <=> $3 LIMIT $4
"""

# The ORDER BY ... LIMIT inside the CTE is what the HNSW index serves; relaxed order may
# return rows slightly out of order, so they are sorted again outside it.
HNSW_NEAREST = """
WITH nearest AS MATERIALIZED (
    SELECT source_id, kind, embedding <=> $3 AS distance FROM content_embeddings
    WHERE organization_id = $1 AND created_at >= $2 AND kind <> 'MATERIAL'
    ORDER BY embedding <=> $3 LIMIT $4
)
SELECT source_id, kind, 1 - distance AS similarity FROM nearest ORDER BY distance
"""

WINDOW_ROWS = """
SELECT count(*) FROM (
    SELECT 1 FROM content_embeddings WHERE organization_id = $1 AND created_at >= $2 LIMIT $3
) AS capped
"""


async def window_rows(conn: Conn, org_id: uuid.UUID, since: datetime, cap: int) -> int:
    """Rows of the organization in the window, counted up to `cap + 1`."""
    return int(await conn.fetchval(WINDOW_ROWS, org_id, since, cap + 1))


async def nearest(
    conn: Conn,
    org_id: uuid.UUID,
    since: datetime,
    vector: Sequence[float],
    *,
    k: int = 1,
    mode: SearchMode = SearchMode.AUTO,
    exact_max_rows: int = 5_000,
    ef_search: int = 100,
    max_scan_tuples: int = 200_000,
) -> list[Neighbour]:
    """The k drafts and posts of the organization since `since` most similar to `vector`.

    Must run inside a transaction (the HNSW settings are SET LOCAL)."""
    if mode is SearchMode.AUTO:
        mode = (
            SearchMode.EXACT
            if await window_rows(conn, org_id, since, exact_max_rows) <= exact_max_rows
            else (SearchMode.HNSW)
        )
    if mode is SearchMode.EXACT:
        rows = await conn.fetch(EXACT_NEAREST, org_id, since, list(vector), k)
    else:
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), k)}")
        # The iterative scan stops after this many tuples (pgvector's default, 20,000, is too
        # few for one organization among many: measured in bench/content_dedup.py).
        await conn.execute(f"SET LOCAL hnsw.max_scan_tuples = {int(max_scan_tuples)}")
        rows = await conn.fetch(HNSW_NEAREST, org_id, since, list(vector), k)
    return [Neighbour(r["source_id"], r["kind"], float(r["similarity"])) for r in rows]


# The whole check in one statement (one round trip): the window's size (counted up to $6), the
# exact copies by hash, the draft's nearest neighbour by an exact scan of the window (only when
# it holds fewer than $6 rows, NULL for no cap; the MATERIALIZED CTE keeps the planner on the
# organization's btree rather than the HNSW index, which would filter after its candidates), and
# the material against the materials drafted in the window ($8, NULL when it has no embedding):
# the window's material ids, each looked up by (kind, source_id), so the part is bounded by the
# window as the rest is (scanning the organization's MATERIAL rows for them grew with history).
CHECK = """
WITH capped AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM content_embeddings WHERE organization_id = $1 AND created_at >= $2 LIMIT $6
    ) AS c
),
window_rows AS MATERIALIZED (
    SELECT embedding FROM content_embeddings
    WHERE organization_id = $1 AND created_at >= $2 AND kind <> 'MATERIAL'
      AND ($6::bigint IS NULL OR (SELECT n FROM capped) < $6)
)
SELECT
    (SELECT n FROM capped) AS window_rows,
    EXISTS (
        SELECT 1 FROM content_embeddings
        WHERE organization_id = $1 AND content_hash = $3 AND created_at >= $2 AND kind <> 'MATERIAL'
    ) OR EXISTS (
        SELECT 1 FROM content_embeddings
        WHERE organization_id = $1 AND material_hash = $4 AND material_id <> $5 AND created_at >= $2
          AND kind <> 'MATERIAL'
    ) AS exact_copy,
    (SELECT 1 - (embedding <=> $7) FROM window_rows ORDER BY embedding <=> $7 LIMIT 1) AS draft_similarity,
    (
        SELECT max(1 - (m.embedding <=> $8))
        FROM (
            SELECT DISTINCT material_id FROM content_embeddings
            WHERE organization_id = $1 AND created_at >= $2 AND kind <> 'MATERIAL' AND material_id <> $5
        ) AS drafted
        -- One index probe per material (LIMIT 1 keeps the planner from scanning every MATERIAL
        -- row into a hash join instead; (kind, source_id) is unique, so it drops nothing).
        CROSS JOIN LATERAL (
            SELECT embedding FROM content_embeddings
            WHERE kind = 'MATERIAL' AND source_id = drafted.material_id AND organization_id = $1 LIMIT 1
        ) AS m
    ) AS material_similarity
"""


async def check(
    conn: Conn,
    org_id: uuid.UUID,
    since: datetime,
    *,
    draft_vector: Sequence[float],
    draft_hash: str,
    material_id: uuid.UUID,
    material_vector: Sequence[float] | None,
    material_hash: str,
    mode: SearchMode = SearchMode.AUTO,
    exact_max_rows: int = 5_000,
    ef_search: int = 100,
    max_scan_tuples: int = 200_000,
) -> Verdict:
    """How close a candidate's draft and material come to the organization's window: one
    statement, and the HNSW search after it when the window is too large for an exact scan."""
    # The exact scan when the window holds at most exact_max_rows rows (AUTO), always (EXACT),
    # never (HNSW).
    cap = {SearchMode.AUTO: exact_max_rows + 1, SearchMode.EXACT: None, SearchMode.HNSW: 0}[mode]
    row = await conn.fetchrow(
        CHECK,
        org_id,
        since,
        draft_hash,
        material_hash,
        material_id,
        cap,
        list(draft_vector),
        None if material_vector is None else list(material_vector),
    )
    assert row is not None  # a SELECT without FROM: always one row
    if cap is None or row["window_rows"] < cap:
        draft_similarity = float(row["draft_similarity"] or 0.0)
    else:
        found = await nearest(
            conn,
            org_id,
            since,
            draft_vector,
            mode=SearchMode.HNSW,
            ef_search=ef_search,
            max_scan_tuples=max_scan_tuples,
        )
        draft_similarity = found[0].similarity if found else 0.0
    value = row["material_similarity"]
    return Verdict(
        draft_similarity=draft_similarity,
        material_similarity=max(0.0, float(value)) if value is not None else 0.0,
        exact_copy=bool(row["exact_copy"]),
    )


class Duplicates(Repository):
    """The check as a run makes it, with content's search settings."""

    async def check(
        self, org_id: uuid.UUID, since: datetime, draft: DraftToCheck, settings: ContentSettings
    ) -> Verdict:
        return await check(
            self.conn,
            org_id,
            since,
            draft_vector=draft.draft_vector,
            draft_hash=draft.draft_hash,
            material_id=draft.material_id,
            material_vector=draft.material_vector,
            material_hash=draft.material_hash,
            exact_max_rows=settings.dedup_exact_max_rows,
            ef_search=settings.hnsw_ef_search,
            max_scan_tuples=settings.hnsw_max_scan_tuples,
        )
