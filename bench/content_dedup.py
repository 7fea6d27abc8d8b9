"""Content's near-duplicate check at scale: latency (p50, p95) and recall@10 against exact search,
over N embeddings spread over 1,000 organizations and 45 days (a 30-day window), on the service's
own schema and queries (hopcast_content.adapters.dedup).

Figures (one JSON object per line, then the whole result as one object with --output):

- dedup_check_ms_p50 / _p95: the whole check a run makes for one candidate (exact-copy hashes,
  nearest draft, nearest drafted material) as the service runs it (AUTO: an exact scan over the
  (organization_id, created_at) btree for an organization's window), beside the bare exact
  nearest-neighbour query alone.
- nearest_exact_ms_p50 / _p95 and recall@10 = 1.0 by definition (it is the reference).
- nearest_hnsw_iterative_ms_p50 / _p95 and recall@10: the HNSW index with
  hnsw.iterative_scan = relaxed_order (the path for an organization with a huge window), with the
  btree dropped so the planner must use HNSW.
- nearest_hnsw_plain recall@10: HNSW without iterative scan (ef_search 40), to show what the
  filter does to a plain HNSW scan.
- hnsw_build_s, hnsw_index_mb, btree_index_mb, table_mb; load_s.

Data: each organization writes about 10 topics; a vector is its topic's centre plus noise,
L2-normalised (generated inside PostgreSQL, reproducible with --seed). Queries are new drafts
near one of the organization's own posts.

Usage: .venv/bin/python bench/content_dedup.py [--rows 100000] [--orgs 1000] [--dim 384]
       [--queries 200] [--database-url URL] [--output FILE]
(default CONTENT_DATABASE_URL or the local stack's server: `make infra-up`). A fresh database is
created and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import drop_database, fresh_database, percentile

from hopcast_content.adapters import dedup
from hopcast_content.bootstrap import render_migrations
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import default_database_url

TOPICS_PER_ORG = 10
SPAN_DAYS = 45
WINDOW_DAYS = 30

LOAD = """
INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                                content_hash, material_hash, embedding, created_at)
SELECT c.organization_id, c.organization_id, 'POST', gen_random_uuid(), gen_random_uuid(),
       md5(g.i::text), md5(g.i::text),
       l2_normalize(c.centre + array(
           SELECT (random() + random() + random() - 1.5) * $4::float8 FROM generate_series(1, $3::int + 0 * g.i)
       )::vector),
       $5::timestamptz - random() * make_interval(days => $6::int)
FROM generate_series($1::int, $2::int) AS g(i)
JOIN centres c ON c.n = g.i % (SELECT count(*) FROM centres)
"""


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50) * 1000, 3),
        "p95": round(percentile(values, 95) * 1000, 3),
        "mean": round(statistics.fmean(values) * 1000, 3),
    }


async def load(db: Database, rows: int, orgs: int, dim: int, seed: int, now: datetime) -> float:
    started = time.perf_counter()
    async with db.pool.acquire() as conn:
        await conn.execute(f"SELECT setseed({(seed % 1000) / 1000.0})")
        await conn.execute(
            """
            CREATE TEMP TABLE centres AS
            SELECT (o.i * $3 + t.j) AS n,
                   ('00000000-0000-4000-8000-' || lpad(to_hex(o.i), 12, '0'))::uuid AS organization_id,
                   l2_normalize(array(SELECT random() - 0.5 FROM generate_series(1, $1 + 0 * o.i + 0 * t.j))::vector)
                       AS centre
            FROM generate_series(0, $2 - 1) AS o(i), generate_series(0, $3 - 1) AS t(j)
            """,
            dim,
            orgs,
            TOPICS_PER_ORG,
        )
        batch = 20_000
        for start in range(0, rows, batch):
            await conn.execute(LOAD, start, min(rows, start + batch) - 1, dim, 0.12, now, SPAN_DAYS)
    return time.perf_counter() - started


async def queries(db: Database, count: int, dim: int, seed: int) -> list[tuple[uuid.UUID, list[float]]]:
    """Drafts near one of their organization's own posts (a light rewrite of it)."""
    rng = random.Random(seed)
    rows = await db.pool.fetch(
        "SELECT organization_id, embedding FROM content_embeddings TABLESAMPLE BERNOULLI (1) REPEATABLE ($1) LIMIT $2",
        seed,
        count,
    )
    out = []
    for r in rows:
        v = [x + rng.gauss(0, 0.03) for x in r["embedding"].to_list()]
        n = sum(x * x for x in v) ** 0.5
        out.append((r["organization_id"], [x / n for x in v]))
    return out


async def timed_nearest(
    db: Database, qs: list[tuple[uuid.UUID, list[float]]], since: datetime, mode: dedup.SearchMode, **kw: Any
) -> tuple[list[float], list[list[uuid.UUID]]]:
    times, results = [], []
    for org, vector in qs:
        async with db.transaction() as conn:
            if mode is dedup.SearchMode.HNSW:
                await conn.execute("SET LOCAL enable_seqscan = off")  # measure the index, not a scan
            if kw.get("plain"):
                await conn.execute("SET LOCAL hnsw.ef_search = 40")
                started = time.perf_counter()
                rows = await conn.fetch(
                    """SELECT source_id FROM content_embeddings
                       WHERE organization_id = $1 AND created_at >= $2 AND kind <> 'MATERIAL'
                       ORDER BY embedding <=> $3 LIMIT 10""",
                    org,
                    since,
                    vector,
                )
                times.append(time.perf_counter() - started)
                results.append([r["source_id"] for r in rows])
                continue
            started = time.perf_counter()
            found = await dedup.nearest(
                conn,
                org,
                since,
                vector,
                k=10,
                mode=mode,
                ef_search=kw.get("ef_search", 100),
                max_scan_tuples=kw.get("max_scan_tuples", 200_000),
            )
            times.append(time.perf_counter() - started)
        results.append([n.source_id for n in found])
    return times, results


def recall(reference: list[list[uuid.UUID]], got: list[list[uuid.UUID]]) -> float:
    hits = sum(len(set(r) & set(g)) for r, g in zip(reference, got, strict=True))
    return hits / max(1, sum(len(r) for r in reference))


async def explain_uses(db: Database, org: uuid.UUID, since: datetime, vector: list[float], sql: str) -> str:
    async with db.transaction() as conn:
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetch("EXPLAIN " + sql, org, since, vector, 10)
    return "\n".join(r[0] for r in plan)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    name, url = await fresh_database(args.database_url, "bench_content")
    folder = Path(tempfile.mkdtemp(prefix="content-bench-migrations-"))
    db = await Database.open(url, load_migrations("content", render_migrations(args.dim, folder)), max_size=4)
    now = datetime.now(UTC)
    since = now - timedelta(days=WINDOW_DAYS)
    result: dict[str, Any] = {"rows": args.rows, "orgs": args.orgs, "dim": args.dim, "window_days": WINDOW_DAYS}
    try:
        result["load_s"] = round(await load(db, args.rows, args.orgs, args.dim, args.seed, now), 1)
        async with db.pool.acquire() as conn:
            await conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
            await conn.execute("SET max_parallel_maintenance_workers = 1")
            started = time.perf_counter()
            try:
                # Not in the migrations (0007 dropped it): the plan for organizations past the exact scan.
                await conn.execute(dedup.HNSW_INDEX)
            finally:  # the pool keeps a connection's session (db._keep_session)
                await conn.execute("RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")
            result["hnsw_build_s"] = round(time.perf_counter() - started, 1)
            await conn.execute("VACUUM ANALYZE content_embeddings")
            sizes = await conn.fetchrow(
                """SELECT pg_relation_size('content_embeddings_hnsw') AS hnsw,
                          pg_relation_size('content_embeddings_organization_time') AS btree,
                          pg_table_size('content_embeddings') AS tbl"""
            )
        result["hnsw_index_mb"] = round(sizes["hnsw"] / 2**20, 1)
        result["btree_index_mb"] = round(sizes["btree"] / 2**20, 1)
        result["table_mb"] = round(sizes["tbl"] / 2**20, 1)
        result["window_rows_per_org"] = round(
            await db.pool.fetchval("SELECT count(*) FROM content_embeddings WHERE created_at >= $1", since) / args.orgs,
            1,
        )

        qs = await queries(db, args.queries, args.dim, args.seed)
        await timed_nearest(db, qs[:10], since, dedup.SearchMode.EXACT)  # warm the cache
        exact_t, exact_r = await timed_nearest(db, qs, since, dedup.SearchMode.EXACT)
        auto_t, auto_r = await timed_nearest(db, qs, since, dedup.SearchMode.AUTO)
        result["nearest_exact_ms"] = ms(exact_t)
        result["nearest_auto_ms"] = ms(auto_t)
        result["auto_recall_at_10"] = round(recall(exact_r, auto_r), 4)

        check_t = []
        for org, vector in qs:
            async with db.transaction() as conn:
                started = time.perf_counter()
                await dedup.check(
                    conn,
                    org,
                    since,
                    draft_vector=vector,
                    draft_hash="0" * 64,
                    material_id=uuid.uuid4(),
                    material_vector=vector,
                    material_hash="1" * 64,
                )
                check_t.append(time.perf_counter() - started)
        result["dedup_check_ms"] = ms(check_t)

        # HNSW paths: without the btrees led by organization_id, the planner has to use the vector index.
        for index in ("organization_time", "organization_hash", "organization_material_hash"):
            await db.pool.execute(f"DROP INDEX content_embeddings_{index}")
        plan = await explain_uses(db, qs[0][0], since, qs[0][1], dedup.HNSW_NEAREST)
        result["hnsw_plan_uses_hnsw_index"] = "content_embeddings_hnsw" in plan
        await timed_nearest(db, qs[:10], since, dedup.SearchMode.HNSW)
        hnsw_t, hnsw_r = await timed_nearest(
            db, qs, since, dedup.SearchMode.HNSW, ef_search=args.ef_search, max_scan_tuples=args.max_scan_tuples
        )
        result["nearest_hnsw_iterative_ms"] = ms(hnsw_t)
        result["hnsw_iterative_recall_at_10"] = round(recall(exact_r, hnsw_r), 4)
        plain_t, plain_r = await timed_nearest(db, qs, since, dedup.SearchMode.HNSW, plain=True)
        result["nearest_hnsw_plain_ms"] = ms(plain_t)
        result["hnsw_plain_recall_at_10"] = round(recall(exact_r, plain_r), 4)
    finally:
        await db.close()
        await drop_database(args.database_url, name)
    return result


def rows_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"rows": result["rows"], "orgs": result["orgs"], "dim": result["dim"]}
    exact = result["nearest_exact_ms"]
    return [
        {
            "name": "dedup_check_ms_p50",
            "value": result["dedup_check_ms"]["p50"],
            "unit": "ms",
            "baseline_name": "nearest_exact_ms_p50",
            "baseline_value": exact["p50"],
            "ratio": round(result["dedup_check_ms"]["p50"] / exact["p50"], 3),
            **base,
        },
        {
            "name": "dedup_check_ms_p95",
            "value": result["dedup_check_ms"]["p95"],
            "unit": "ms",
            "baseline_name": "nearest_exact_ms_p95",
            "baseline_value": exact["p95"],
            "ratio": round(result["dedup_check_ms"]["p95"] / exact["p95"], 3),
            **base,
        },
        {
            "name": "dedup_recall_at_10",
            "value": result["auto_recall_at_10"],
            "unit": "recall",
            "baseline_name": "exact_search",
            "baseline_value": 1.0,
            "ratio": result["auto_recall_at_10"],
            **base,
        },
        {
            "name": "hnsw_iterative_recall_at_10",
            "value": result["hnsw_iterative_recall_at_10"],
            "unit": "recall",
            "baseline_name": "exact_search",
            "baseline_value": 1.0,
            "ratio": result["hnsw_iterative_recall_at_10"],
            "p50_ms": result["nearest_hnsw_iterative_ms"]["p50"],
            "p95_ms": result["nearest_hnsw_iterative_ms"]["p95"],
            **base,
        },
        {
            "name": "hnsw_plain_recall_at_10",
            "value": result["hnsw_plain_recall_at_10"],
            "unit": "recall",
            "baseline_name": "exact_search",
            "baseline_value": 1.0,
            "ratio": result["hnsw_plain_recall_at_10"],
            **base,
        },
        {
            "name": "hnsw_build_s",
            "value": result["hnsw_build_s"],
            "unit": "s",
            "index_mb": result["hnsw_index_mb"],
            "table_mb": result["table_mb"],
            "btree_mb": result["btree_index_mb"],
            **base,
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=100)
    parser.add_argument("--max-scan-tuples", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--database-url", default=os.environ.get("CONTENT_DATABASE_URL", default_database_url("content"))
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    for row in rows_of(result):
        print(json.dumps(row))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
