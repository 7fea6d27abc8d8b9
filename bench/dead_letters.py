"""Dead letters per second: a flood of records refused as they are read, through the kernel's
consumer on a real database, beside the same records dead-lettered one transaction each.

- dead_letters_per_s: `EventConsumer.handle_batch` (as a service runs it: fair rounds, lanes)
  over --records records of upstream.events in batches of --batch, each refused as it is read:
  a field missing, a time out of range, a type not in the contract, a key that is not the
  organization, bytes that are not JSON (the shapes in turn, contract examples otherwise,
  keyed over 100 organizations). Each is kept in `dead_letters`, recorded in the inbox and its
  DLQ message written to the outbox. The row also gives the CPU per dead letter (this process's
  and the database backends').
- baseline: `dead_letters_per_s_one_by_one`, `handle_record` on each of the same records on a
  fresh database: one transaction a dead letter, as every dead letter was written until the
  records of a round shared one.

Usage: .venv/bin/python bench/dead_letters.py [--records 5000] [--batch 200] [--database-url URL]
(default BILLING_DATABASE_URL or the local stack's server). Prints one JSON row. Fresh
databases are made and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from common import Meter, drop_database, fresh_database

from hopcast_billing.bootstrap import MIGRATIONS, definition
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings, ServiceSettings, default_database_url
from hopcast_shared.testing import as_record

ORGANIZATIONS = 100


def _refused(i: int, org: uuid.UUID) -> ConsumerRecord[Any, Any]:
    """The i-th record of the flood: one of five shapes a consumer refuses as it reads them."""
    event: dict[str, Any] = json.loads(example_event("CreditsGranted", organization_id=org).to_json())
    key = str(org).encode()
    shape = i % 5
    if shape == 0:
        del event["data"]["amount"]
    elif shape == 1:
        event["time"] = "9999-12-31T23:59:59-23:59"
    elif shape == 2:
        event["type"] = "CreditsGrantedV2"
    elif shape == 3:
        key = str(uuid.uuid4()).encode()
    value = b"\xff not JSON " + json.dumps(event).encode() if shape == 4 else json.dumps(event).encode()
    return dataclasses.replace(as_record(value), key=key, serialized_key_size=len(key))


async def _flood(
    server_url: str, records: Sequence[ConsumerRecord[Any, Any]], batch: int, *, one_by_one: bool
) -> dict[str, Any]:
    name, url = await fresh_database(server_url, "bench_dead_letters")
    db = await Database.open(url, load_migrations("billing", MIGRATIONS), max_size=8)
    try:
        settings = ServiceSettings(name="billing", database_url=url, http_port=1)
        consumer = EventConsumer("billing", db, definition().handlers, kafka=KafkaSettings(), settings=settings)
        async with Meter(db) as meter:
            if one_by_one:
                outcomes = [await consumer.handle_record(r) for r in records]
            else:
                outcomes = []
                for i in range(0, len(records), batch):
                    outcomes += await consumer.handle_batch(records[i : i + batch])
        stored = await db.pool.fetchval("SELECT count(*) FROM dead_letters")
        sent = await db.pool.fetchval("SELECT count(*) FROM outbox")
    finally:
        await db.close()
        await drop_database(server_url, name)
    if set(outcomes) != {"dead_lettered"} or stored != len(records) or sent != len(records):
        raise SystemExit(f"not every record was dead-lettered once: {set(outcomes)}, {stored} stored, {sent} sent")
    return {"per_s": len(records) / meter.seconds, **meter.per_item(len(records), "dead_letter")}


async def run(records: int, batch: int, server_url: str) -> dict[str, Any]:
    orgs = [uuid.uuid4() for _ in range(ORGANIZATIONS)]
    flood = [_refused(i, orgs[i % len(orgs)]) for i in range(records)]
    started = time.perf_counter()
    together = await _flood(server_url, flood, batch, one_by_one=False)
    alone = await _flood(server_url, flood, batch, one_by_one=True)
    value, baseline = together.pop("per_s"), alone.pop("per_s")
    return {
        "name": "dead_letters_per_s",
        "value": round(value, 1),
        "unit": "dead letters/s",
        "baseline_name": "dead_letters_per_s_one_by_one",
        "baseline_value": round(baseline, 1),
        "ratio": round(value / baseline, 3),
        "records": records,
        "batch": batch,
        "organizations": ORGANIZATIONS,
        **together,
        "one_by_one": alone,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=200, help="records a consumer batch")
    parser.add_argument(
        "--database-url", default=os.environ.get("BILLING_DATABASE_URL", default_database_url("billing"))
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.records, args.batch, args.database_url))))


if __name__ == "__main__":
    main()
