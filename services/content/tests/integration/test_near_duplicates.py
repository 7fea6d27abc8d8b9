"""No near-duplicate is drafted, on the real database: the same text or a light edit of a post of
the last thirty days is skipped within an organization (never across organizations), paraphrases
are caught with the semantic embedder, and the filtered search behind the check keeps its recall
and its tenant isolation.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hopcast_content.adapters import dedup
from hopcast_content.config import ContentSettings
from hopcast_shared.db import Database
from hopcast_shared.migrations import MigrationError

pytestmark = pytest.mark.integration


async def test_two_materials_with_the_same_text_are_never_both_drafted_in_one_organization(h: Any, texts: Any) -> None:
    t = await h.tenant()
    first = await t.material(texts.a, max_uses=1)
    await t.material("  " + texts.a.upper() + " ", max_uses=1)  # the same text, differently typed
    post = h.drafted(await t.run())
    assert post["data"]["material_id"] == first
    await t.end(post["data"]["run_id"])
    h.skipped(await t.run(), "ALL_CANDIDATES_DUPLICATE", "SKIPPED_DUPLICATE")
    # Another organization with the same text still gets its draft: never across organizations.
    other = await h.tenant()
    await other.material(texts.a)
    assert h.drafted(await other.run())["data"]["max_similarity"] < 0.85


async def test_a_light_edit_is_too_similar_and_the_next_material_is_drafted(h: Any, texts: Any) -> None:
    t = await h.tenant()
    a = await t.material(texts.a)
    await t.material(texts.a.replace("Tuesday", "Wednesday").replace("Ana", "Bo"))
    c = await t.material(texts.c)
    assert h.drafted(await t.run())["data"]["material_id"] == a
    second = h.drafted(await t.run())["data"]
    assert second["material_id"] == c and second["max_similarity"] <= 0.85


async def test_the_window_is_thirty_days(h: Any, texts: Any) -> None:
    t = await h.tenant()
    await t.material(texts.a)
    post = h.drafted(await t.run())
    await t.end(post["data"]["run_id"])
    await h.db.pool.execute(
        "UPDATE content_embeddings SET created_at = now() - interval '31 days' WHERE kind <> 'MATERIAL'"
    )
    await t.material(texts.a)  # a copy of a post from 31 days ago is fine again
    assert h.drafted(await t.run())


PARAPHRASE_A = (
    "Each Tuesday we roast, which means any bag you receive is under a week old. Every batch is checked by hand by Ana."
)


async def test_paraphrases_are_caught_with_the_semantic_embedder(db: Database, harness_on: Any, texts: Any) -> None:
    h = harness_on(db)  # the default embedder: all-MiniLM-L6-v2
    t = await h.tenant()
    first = await t.material(texts.a, max_uses=1)
    await t.material(PARAPHRASE_A, max_uses=1)  # the same post in other words
    other = await t.material(texts.b, max_uses=1)
    post = h.drafted(await t.run())["data"]
    assert post["material_id"] == first
    await t.end(post["run_id"])
    second = h.drafted(await t.run())["data"]
    assert second["material_id"] == other and second["max_similarity"] <= 0.85
    # The hashing embedder does not see it: it measures wording.
    plain = harness_on(db, ContentSettings(embedder="hashing"))
    u = await plain.tenant()
    await u.material(texts.a, max_uses=1)
    paraphrase = await u.material(PARAPHRASE_A, max_uses=1)
    await u.end(h.drafted(await u.run())["data"]["run_id"])
    assert h.drafted(await u.run())["data"]["material_id"] == paraphrase


def _unit(rng: random.Random, dim: int) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


async def test_filtered_search_recall_against_exact_and_tenant_isolation(
    database_url: str, tmp_path: Path, open_db: Any
) -> None:
    """20,000 embeddings over 40 organizations (some older than the window): the HNSW path
    with an iterative scan returns what the exact scan returns (recall@10 >= 0.95), and
    never a row of another organization or outside the window; a run's duplicate check finds
    the nearest draft each path finds."""
    dim, orgs, per_org = 64, 40, 500
    db = await open_db(database_url, dim, tmp_path)
    try:
        rng = random.Random(11)
        org_ids = [uuid.uuid4() for _ in range(orgs)]
        now = datetime.now(UTC)
        rows = []
        for org in org_ids:
            centres = [_unit(rng, dim) for _ in range(5)]  # each organization writes about a few topics
            for i in range(per_org):
                c = centres[i % 5]
                v = [x + rng.gauss(0, 0.08) for x in c]
                age = timedelta(days=rng.uniform(0, 45))
                rows.append((org, uuid.uuid4(), "PENDING_POST", "h", v, now - age))
        await db.pool.executemany(
            """INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                   content_hash, material_hash, embedding, created_at)
               VALUES ($1, $1, $3, $2, $2, $4, $4, l2_normalize($5::vector), $6)""",
            rows,
        )
        await db.pool.execute(dedup.HNSW_INDEX)  # the plan for large organizations, after the load
        await db.pool.execute("ANALYZE content_embeddings")
        since = now - timedelta(days=30)
        hits = total = 0
        for q in range(30):
            org = org_ids[q % orgs]
            query = _unit(rng, dim) if q % 3 == 0 else [x + rng.gauss(0, 0.05) for x in rows[q * 97][4]]
            if q % 3 != 0:
                org = rows[q * 97][0]
            async with db.transaction() as conn:
                exact = await dedup.nearest(conn, org, since, query, k=10, mode=dedup.SearchMode.EXACT)
                approx = await dedup.nearest(conn, org, since, query, k=10, mode=dedup.SearchMode.HNSW, ef_search=100)
                auto = await dedup.nearest(conn, org, since, query, k=10)
                # The run's check (one statement on the exact path) finds the same nearest draft.
                checks = {
                    mode: await dedup.check(
                        conn,
                        org,
                        since,
                        draft_vector=query,
                        draft_hash="h" if q % 2 else "not-a-copy",
                        material_id=uuid.uuid4(),
                        material_vector=None,
                        material_hash="m",
                        mode=mode,
                    )
                    for mode in dedup.SearchMode
                }
                owners = await conn.fetch(
                    "SELECT DISTINCT organization_id, min(created_at) AS oldest FROM content_embeddings "
                    "WHERE source_id = ANY($1) GROUP BY 1",
                    [n.source_id for n in approx + exact],
                )
            assert [o["organization_id"] for o in owners] == [org]
            assert all(o["oldest"] >= since for o in owners)
            assert len(exact) == 10 and [n.source_id for n in auto] == [n.source_id for n in exact]
            assert checks[dedup.SearchMode.AUTO] == checks[dedup.SearchMode.EXACT]
            assert checks[dedup.SearchMode.EXACT].draft_similarity == pytest.approx(exact[0].similarity)
            assert checks[dedup.SearchMode.HNSW].draft_similarity == pytest.approx(approx[0].similarity)
            assert {c.exact_copy for c in checks.values()} == {q % 2 == 1}
            hits += len({n.source_id for n in exact} & {n.source_id for n in approx})
            total += len(exact)
            assert exact == sorted(exact, key=lambda n: -n.similarity)
        assert hits / total >= 0.95, f"recall@10 {hits / total:.3f}"
    finally:
        await db.close()


async def test_the_material_part_and_the_search_past_the_exact_scan_without_the_hnsw_index(
    database_url: str, tmp_path: Path, open_db: Any
) -> None:
    """The check's material part compares the material with the organization's materials drafted
    in the window only (not the candidate's own, not one drafted before the window, not another
    organization's); and on a database as migrated (no HNSW index), a window past the exact scan
    is still searched exactly."""
    dim = 16
    db = await open_db(database_url, dim, tmp_path)
    try:
        rng = random.Random(5)
        org, other = uuid.uuid4(), uuid.uuid4()
        now = datetime.now(UTC)
        since = now - timedelta(days=30)
        query = _unit(rng, dim)
        near = [x + rng.gauss(0, 0.2) for x in query]
        in_window, old, own, others = (uuid.uuid4() for _ in range(4))
        rows = [
            # (organization, kind, source, material, vector, age in days)
            (org, "MATERIAL", in_window, in_window, near, 90),
            (org, "PENDING_POST", uuid.uuid4(), in_window, _unit(rng, dim), 1),
            (org, "MATERIAL", old, old, query, 90),
            (org, "PENDING_POST", uuid.uuid4(), old, _unit(rng, dim), 40),
            (org, "MATERIAL", own, own, query, 90),
            (org, "PENDING_POST", uuid.uuid4(), own, _unit(rng, dim), 2),
            (other, "MATERIAL", others, others, query, 90),
            (other, "PENDING_POST", uuid.uuid4(), others, _unit(rng, dim), 1),
        ]
        await db.pool.executemany(
            """INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                   content_hash, material_hash, embedding, created_at)
               VALUES ($1, $1, $2, $3, $4, $5, $6, l2_normalize($7::vector), $8)""",
            [(o, k, s, m, str(s), str(m), v, now - timedelta(days=age)) for o, k, s, m, v, age in rows],
        )
        assert not await db.pool.fetchval("SELECT to_regclass('content_embeddings_hnsw') IS NOT NULL")
        expected = await db.pool.fetchval(
            "SELECT 1 - (l2_normalize($1::vector) <=> l2_normalize($2::vector))", near, query
        )
        async with db.transaction() as conn:
            verdicts = {
                mode: await dedup.check(
                    conn,
                    org,
                    since,
                    draft_vector=query,
                    draft_hash="not-a-copy",
                    material_id=own,
                    material_vector=query,
                    material_hash="m",
                    mode=mode,
                    exact_max_rows=1,  # AUTO: the window (3 rows) is past the exact scan
                )
                for mode in dedup.SearchMode
            }
        assert expected < 0.99  # so the material found is the one drafted in the window
        for verdict in verdicts.values():
            assert verdict.material_similarity == pytest.approx(expected)
            assert not verdict.exact_copy
        # Past the exact scan without the index, the search is the exact one.
        assert len({round(v.draft_similarity, 9) for v in verdicts.values()}) == 1
    finally:
        await db.close()


async def test_a_database_of_another_dimension_refuses_to_start(
    database_url: str, tmp_path: Path, open_db: Any
) -> None:
    db = await open_db(database_url, 384)
    await db.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await open_db(database_url, 128, tmp_path)
    assert "vector(128)" in (tmp_path / "0001_content.sql").read_text()
