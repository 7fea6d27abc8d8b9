"""Scheduler claims per second: 100,000 schedules due at once, two replicas claiming in
parallel, beside the bare claim statement on the same database in the same run.

- scheduler_claims_per_s: `claim_and_emit` as the tick loop runs it (lock a batch with
  FOR UPDATE SKIP LOCKED, plan the runs, insert run rows, write ScheduleDue to the outbox,
  advance next_run_at), two concurrent replicas, batches of --batch.
- baseline: the bare statement that only locks a batch and advances next_run_at, with the
  same replicas and batch size: the floor the full claim is compared with.

Usage: .venv/bin/python bench/scheduler_claims.py [--schedules 100000] [--batch 1000]
       [--database-url URL]   (default SCHEDULER_DATABASE_URL or the local stack's server)
Prints one JSON object; each run uses a fresh database on that server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from common import drop_database, fresh_database

from hopcast_scheduler.bootstrap import MIGRATIONS
from hopcast_scheduler.handlers import claim_and_emit
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings, default_database_url

NOW = datetime(2027, 6, 1, 12, 5, tzinfo=UTC)
DUE = NOW - timedelta(minutes=5)
BARE_CLAIM = """
UPDATE schedules SET next_run_at = $2
WHERE id IN (
    SELECT id FROM schedules
    WHERE next_run_at <= $1 AND status = 'ACTIVE' AND is_active AND deleted_at IS NULL
    ORDER BY next_run_at LIMIT $3
    FOR UPDATE SKIP LOCKED
)
"""


async def _seed(db: Database, n: int) -> None:
    async with db.transaction() as conn:
        await conn.execute("TRUNCATE schedule_runs, schedules, brands, organizations, outbox CASCADE")
        orgs = [uuid.uuid4() for _ in range(1000)]
        brands = [uuid.uuid4() for _ in orgs]
        await conn.executemany("INSERT INTO organizations (id, name) VALUES ($1, 'o')", [(o,) for o in orgs])
        await conn.executemany(
            "INSERT INTO brands (id, organization_id, name, timezone) VALUES ($1, $2, 'b', 'Europe/Berlin')",
            list(zip(brands, orgs, strict=True)),
        )
        await conn.execute(
            """
            INSERT INTO schedules (id, organization_id, brand_profile_id, timezone, times, days_of_week, platforms,
                material_strategy, generation_mode, missed_run_policy, is_active, next_run_at)
            SELECT gen_random_uuid(), o, b, 'Europe/Berlin', ARRAY['09:00','14:00'], ARRAY[0,1,2,3,4,5,6]::smallint[],
                   ARRAY['TWITTER','LINKEDIN'], 'round_robin', 'autopilot', 'ONCE', true, $3
            FROM generate_series(1, $4) AS i,
                 LATERAL (SELECT ($1::uuid[])[1 + i % 1000] AS o, ($2::uuid[])[1 + i % 1000] AS b) AS pick
            """,
            orgs,
            brands,
            DUE,
            n,
        )
    await db.pool.execute("ANALYZE schedules")


async def _replicas(db: Database, replicas: int, claim_batch: object) -> tuple[int, float]:
    async def replica() -> int:
        total = 0
        while True:
            async with db.transaction() as conn:
                n = await claim_batch(conn)  # type: ignore[operator]
            if n == 0:
                return total
            total += n

    started = time.perf_counter()
    counts = await asyncio.gather(*(replica() for _ in range(replicas)))
    return sum(counts), time.perf_counter() - started


async def run(schedules: int, batch: int, replicas: int, server_url: str) -> dict[str, object]:
    name, url = await fresh_database(server_url, "bench_scheduler")
    db = await Database.open(url, load_migrations("scheduler", MIGRATIONS), max_size=replicas + 2)
    kafka = KafkaSettings(topic_prefix="bench.")
    try:
        await _seed(db, schedules)

        async def full(conn: asyncpg.Connection) -> int:
            return await claim_and_emit(conn, kafka, now=NOW, limit=batch)

        fired, full_s = await _replicas(db, replicas, full)
        runs = await db.pool.fetchval("SELECT count(*) FROM schedule_runs")
        outbox = await db.pool.fetchval("SELECT count(*) FROM outbox")

        await _seed(db, schedules)
        later = NOW + timedelta(days=1)

        async def bare(conn: asyncpg.Connection) -> int:
            status = await conn.execute(BARE_CLAIM, NOW, later, batch)
            return int(status.split()[-1])

        claimed, bare_s = await _replicas(db, replicas, bare)
    finally:
        await db.close()
        await drop_database(server_url, name)
    value = fired / full_s
    baseline = claimed / bare_s
    return {
        "name": "scheduler_claims_per_s",
        "value": round(value, 1),
        "unit": "claims/s",
        "baseline_name": "bare_claim_update_per_s",
        "baseline_value": round(baseline, 1),
        "ratio": round(value / baseline, 3),
        "schedules": schedules,
        "replicas": replicas,
        "batch": batch,
        "fired": fired,
        "runs_written": runs,
        "outbox_rows_written": outbox,
        "seconds": round(full_s, 3),
        "baseline_seconds": round(bare_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--database-url", default=os.environ.get("SCHEDULER_DATABASE_URL", default_database_url("scheduler"))
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.schedules, args.batch, args.replicas, args.database_url))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
