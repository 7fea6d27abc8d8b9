"""Scheduler claims per second: 100,000 schedules due at once, two replicas claiming in
parallel, beside the bare claim statement on the same database in the same run.

- scheduler_claims_per_s: `claim_and_emit` as the tick loop runs it, each replica its own process (lock a batch with
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
import multiprocessing
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import asyncpg
from common import drop_database, fresh_database

from hopcast_scheduler.bootstrap import MIGRATIONS
from hopcast_scheduler.service_layer.handlers import SchedulerDeps, claim_and_emit
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


def _replica(url: str, mode: str, batch: int, start_at: float) -> tuple[int, float, float]:
    """One replica in its own process, as deployments run them: claim until nothing is due.
    Returns (claimed, started, finished) in wall-clock seconds."""

    async def main() -> tuple[int, float, float]:
        conn = await asyncpg.connect(url)
        kafka = KafkaSettings(topic_prefix="bench.")
        later = NOW + timedelta(days=1)
        total = 0
        try:
            await asyncio.sleep(max(0.0, start_at - time.time()))  # all replicas start together
            started = time.time()
            while True:
                async with conn.transaction():
                    if mode == "full":
                        n = await claim_and_emit(SchedulerDeps(), conn, kafka, now=NOW, limit=batch)
                    else:
                        n = int((await conn.execute(BARE_CLAIM, NOW, later, batch)).split()[-1])
                if n == 0:
                    return total, started, time.time()
                total += n
        finally:
            await conn.close()

    return asyncio.run(main())


def _replicas(url: str, replicas: int, mode: str, batch: int) -> tuple[int, float]:
    start_at = time.time() + 2.0  # time for the processes to start and import
    with ProcessPoolExecutor(replicas, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_replica, *zip(*[(url, mode, batch, start_at)] * replicas, strict=True)))
    claimed = sum(r[0] for r in results)
    return claimed, max(r[2] for r in results) - min(r[1] for r in results)


async def run(schedules: int, batch: int, replicas: int, server_url: str) -> dict[str, object]:
    name, url = await fresh_database(server_url, "bench_scheduler")
    db = await Database.open(url, load_migrations("scheduler", MIGRATIONS), max_size=replicas + 2)
    try:
        await _seed(db, schedules)

        fired, full_s = await asyncio.to_thread(_replicas, url, replicas, "full", batch)
        runs = await db.pool.fetchval("SELECT count(*) FROM schedule_runs")
        outbox = await db.pool.fetchval("SELECT count(*) FROM outbox")

        await _seed(db, schedules)
        claimed, bare_s = await asyncio.to_thread(_replicas, url, replicas, "bare", batch)
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
