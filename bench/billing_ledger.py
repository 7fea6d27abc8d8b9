"""Ledger debits per second, hot (one organization) and spread (10,000 organizations), each
beside a bare single-row conditional UPDATE on the same database in the same run.

- ledger_debits_per_s_hot / _uniform: PendingPostCreated events handled as the consumer
  does (contract parsing, inbox, the debit decision row, the conditional debit, two ledger
  rows, CreditsDebited and CreditsUsage in the outbox), in batches of --batch records per
  transaction as the consumer takes them from Kafka under load (`handle_batch`; --batch 1
  is one transaction per event), with --concurrency batches at once (partitions, replicas).
  Each row also gives the CPU per debit (python_cpu_us_per_debit, postgres_cpu_us_per_debit:
  this process's and the bench database's backends'), steadier than wall time here.
- baseline: `UPDATE balances SET ... WHERE organization_id = $1 AND balance >= $2`, one
  statement per debit, the same concurrency and organizations.

Usage: .venv/bin/python bench/billing_ledger.py [--debits 20000] [--batch 200] [--concurrency 4] [--database-url URL]
(default BILLING_DATABASE_URL or the local stack's server). Prints one JSON object per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable

from common import Meter, drop_database, fresh_database

from hopcast_billing.bootstrap import MIGRATIONS, definition
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings, ServiceSettings, default_database_url
from hopcast_shared.testing import as_record

BARE = """
UPDATE balances SET topup_credits = topup_credits - $2
WHERE organization_id = $1 AND period_credits + topup_credits >= $2
"""


async def _concurrently(jobs: list[Callable[[], Awaitable[object]]], concurrency: int) -> float:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _figure(
    name: str, db: Database, consumer: EventConsumer, orgs: list[str], debits: int, batch: int, concurrency: int
) -> dict[str, object]:
    for org in orgs:
        grant = example_event("CreditsGranted", organization_id=org, grant_id=str(uuid.uuid4()), amount=10**9)
        await consumer.handle_record(as_record(grant))
    records = [
        as_record(
            example_event(
                "PendingPostCreated",
                organization_id=orgs[i % len(orgs)],
                pending_post_id=str(uuid.uuid4()),
                run_id=str(uuid.uuid4()),
                platforms=["TWITTER", "LINKEDIN"],
            ),
            topic="content.events",
        )
        for i in range(debits)
    ]
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    async with Meter(db) as meter:
        seconds = await _concurrently([lambda b=b: consumer.handle_batch(b) for b in batches], concurrency)
    taken = await db.pool.fetchval("SELECT count(*) FROM debits WHERE status = 'DEBITED'")

    org_ids = [uuid.UUID(o) for o in orgs]

    async def bare(i: int) -> None:
        await db.pool.execute(BARE, org_ids[i % len(org_ids)], 3)

    baseline_s = await _concurrently([lambda i=i: bare(i) for i in range(debits)], concurrency)
    value, baseline = debits / seconds, debits / baseline_s
    return {
        "name": name,
        "value": round(value, 1),
        "unit": "debits/s",
        "baseline_name": "bare_conditional_update_per_s",
        "baseline_value": round(baseline, 1),
        "ratio": round(value / baseline, 3),
        "debits": debits,
        "debited": taken,
        "organizations": len(orgs),
        "batch": batch,
        "concurrency": concurrency,
        **meter.per_item(debits, "debit"),
    }


async def run(debits: int, batch: int, concurrency: int, server_url: str) -> list[dict[str, object]]:
    results = []
    for name, organizations in (("ledger_debits_per_s_hot", 1), ("ledger_debits_per_s_uniform", 10_000)):
        name_, url = await fresh_database(server_url, "bench_billing")
        db = await Database.open(url, load_migrations("billing", MIGRATIONS), max_size=concurrency + 2)
        settings = ServiceSettings(name="billing", database_url=url, http_port=1, handler_max_attempts=20)
        consumer = EventConsumer("billing", db, definition().handlers, kafka=KafkaSettings(), settings=settings)
        try:
            orgs = [str(uuid.uuid4()) for _ in range(min(organizations, debits))]
            results.append(await _figure(name, db, consumer, orgs, debits, batch, concurrency))
        finally:
            await db.close()
            await drop_database(server_url, name_)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debits", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200, help="records per transaction (the consumer's batch)")
    parser.add_argument("--concurrency", type=int, default=4, help="batches at once")
    parser.add_argument(
        "--database-url", default=os.environ.get("BILLING_DATABASE_URL", default_database_url("billing"))
    )
    args = parser.parse_args()
    for result in asyncio.run(run(args.debits, args.batch, args.concurrency, args.database_url)):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
