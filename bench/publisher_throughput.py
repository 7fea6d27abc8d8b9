"""Publisher throughput: pending posts turned into posts per second (2 platforms, sandbox
adapter), beside a baseline transaction writing the same rows.

Three measurements on a fresh database of the given PostgreSQL server:

- inputs: PendingPostCreated and CreditsDebited of each pending post handled as the
  consumer does (contract parsing, inbox, state machine, account choice, attempts), in
  batches of --batch records per transaction as the consumer takes them from Kafka under
  load (`EventConsumer.handle_batch`: a batch of one topic's records, the posts' drafts then
  their debits, or the debits first for every other batch, so both orders are measured;
  --batch 1 is one transaction per event), --concurrency batches at once (1: the kernel's
  one consumer per service; more: partitions handled by several replicas);
- publishing: the publishing loop's rounds (lease, sandbox publish, one completion
  transaction per batch writing posts, attempts, pending posts and outbox rows);
- baseline: the same rows (posts, outbox rows, pending post updates) written by plain
  batched INSERT/UPDATE transactions of the same batch size, with nothing else: the floor
  the publishing loop is compared with.

Usage: .venv/bin/python bench/publisher_throughput.py [--posts 5000] [--batch 200] [--concurrency 1]
[--batch-size 500] [--workers 2] [--database-url URL]
(default: the publisher's database server, PUBLISHER_DATABASE_URL or the local stack's).
Prints one JSON row per figure (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from common import Meter, drop_database, fresh_database

from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.bootstrap import MIGRATIONS, definition
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.entrypoints.publishing_loop import PublishingLoop
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import account_transit_aad, load_keyring
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import CryptoSettings, KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

PLATFORMS = ["BLUESKY", "MASTODON"]
KAFKA = KafkaSettings(topic_prefix="bench.")


async def run(
    posts: int, server_url: str, batch_size: int, workers: int = 2, batch: int = 200, concurrency: int = 1
) -> list[dict[str, Any]]:
    name, url = await fresh_database(server_url, "bench_publisher")
    keyring = load_keyring(CryptoSettings(token_keys=f"1:{base64.b64encode(os.urandom(32)).decode()}"))
    settings = PublisherSettings(publish_batch_size=batch_size)
    adapters = {p: SandboxAdapter(p, keep=10) for p in PLATFORMS}
    service = definition(settings=settings, adapters=adapters, keyring=keyring)
    db = await Database.open(url, load_migrations("publisher", MIGRATIONS), min_size=4, max_size=8)
    try:
        consumer = EventConsumer(
            "publisher",
            db,
            service.handlers,
            kafka=KAFKA,
            settings=ServiceSettings(name="publisher", database_url=url, http_port=18084),
        )
        org, brand = str(uuid.uuid4()), str(uuid.uuid4())

        def event(type_name: str, **changes: Any) -> Any:
            return example_event(type_name, organization_id=org, **changes)

        await consumer.handle_record(as_record(event("OrganizationCreated")))
        await consumer.handle_record(as_record(event("BrandProfileCreated", brand_profile_id=brand)))
        for platform in PLATFORMS:
            account = str(uuid.uuid4())
            token = keyring.encrypt(f"plain-{platform}", associated_data=account_transit_aad(org, account))
            await consumer.handle_record(
                as_record(
                    event(
                        "SocialAccountConnected",
                        social_account_id=account,
                        platform=platform,
                        access_token=token,
                        refresh_token=None,
                        token_expires_at=None,
                    )
                )
            )
            await consumer.handle_record(
                as_record(
                    event("BrandAccountLinked", brand_profile_id=brand, social_account_id=account, is_default=True)
                )
            )

        created, debited = [], []
        for _ in range(posts):
            pending, run_id = str(uuid.uuid4()), str(uuid.uuid4())
            created.append(
                as_record(
                    event(
                        "PendingPostCreated",
                        pending_post_id=pending,
                        run_id=run_id,
                        brand_profile_id=brand,
                        platforms=PLATFORMS,
                    ),
                    topic="content.events",
                )
            )
            debited.append(
                as_record(event("CreditsDebited", pending_post_id=pending, run_id=run_id), topic="billing.events")
            )

        # What the publisher's process does once started (hopcast_publisher/__main__.py): what
        # exists by now is kept out of the collector's way (here, also the bench's own records).
        gc.collect()
        gc.freeze()

        # What the consumer gets from Kafka under load: a batch of one topic's records at a time;
        # every other group of posts has its debits fetched before its drafts.
        batches: list[list[Any]] = []
        for k, i in enumerate(range(0, posts, batch)):
            drafts, debits = created[i : i + batch], debited[i : i + batch]
            batches += [drafts, debits] if k % 2 == 0 else [debits, drafts]
        queue = list(reversed(batches))

        async def consume() -> None:
            while queue:
                records = queue.pop()
                if batch == 1:
                    outcomes = [await consumer.handle_record(records[0])]
                else:
                    outcomes = await consumer.handle_batch(records)
                assert outcomes == ["handled"] * len(records), outcomes

        baseline_before = await _baseline(db, posts, batch_size, org, brand)
        async with Meter(db) as inputs:
            await asyncio.gather(*(consume() for _ in range(concurrency)))
        inputs_s = inputs.seconds
        publishing_now = await db.pool.fetchval("SELECT count(*) FROM pending_posts WHERE status = 'PUBLISHING'")
        assert publishing_now == posts, publishing_now

        loop = PublishingLoop(db, KAFKA, adapters, AccountTokens(keyring), settings)

        async def drain() -> None:
            while await loop.publish_batch():
                pass

        async with Meter(db) as publishing:
            await asyncio.gather(*(drain() for _ in range(workers)))
        publishing_s = publishing.seconds
        written = await db.pool.fetchval("SELECT count(*) FROM posts")
        assert written == posts * len(PLATFORMS), written
        outbox_rows = await db.pool.fetchval("SELECT count(*) FROM outbox")
        assert outbox_rows == posts * 5, outbox_rows  # PostPublished on 2 topics per platform, 1 ScheduleRunCompleted
        # Exactly one of each: a post per pending post and platform, a PostPublished per post
        # (on each of its topics), a ScheduleRunCompleted per run.
        once = await db.pool.fetchrow(
            """
            WITH events AS (
                SELECT topic, event_type, convert_from(payload, 'UTF8')::jsonb -> 'data' AS data FROM outbox
            )
            SELECT (SELECT count(DISTINCT (pending_post_id, platform)) FROM posts) AS posts,
                   (SELECT count(DISTINCT (topic, data ->> 'post_id')) FROM events
                    WHERE event_type = 'PostPublished') AS published,
                   (SELECT count(DISTINCT data ->> 'run_id') FROM events
                    WHERE event_type = 'ScheduleRunCompleted') AS runs,
                   (SELECT count(*) FROM pending_posts WHERE status = 'PUBLISHED') AS pending_published
            """
        )
        assert tuple(once) == (posts * 2, posts * 4, posts, posts), dict(once)

        # Measured before the inputs and after the publishing, the mean of both: the machine is
        # shared, and its load drifts between phases.
        baseline_after = await _baseline(db, posts, batch_size, org, brand)
        baseline_s = (baseline_before.seconds + baseline_after.seconds) / 2
        common = {
            "pending_posts": posts,
            "platforms": len(PLATFORMS),
            "batch_size": batch_size,
            "publishing_workers": workers,
            "input_batch": batch,
            "input_concurrency": concurrency,
            "adapter": "sandbox",
        }
        baseline = posts / baseline_s

        def row(name: str, value: float, unit: str, base: float, **extra: Any) -> dict[str, Any]:
            return {
                "name": name,
                "value": round(value, 1),
                "unit": unit,
                "baseline_name": "same_rows_batched_insert_per_s",
                "baseline_value": round(base, 1),
                "ratio": round(value / base, 3),
                **common,
                **extra,
            }

        return [
            row(
                "publisher_pending_posts_per_s",
                posts / publishing_s,
                "pending posts/s",
                baseline,
                **publishing.per_post(posts),
                baseline_runs_per_s=[round(posts / baseline_before.seconds), round(posts / baseline_after.seconds)],
                baseline_python_cpu_us_per_post=baseline_after.per_post(posts)["python_cpu_us_per_post"],
                baseline_postgres_cpu_us_per_post=baseline_after.per_post(posts)["postgres_cpu_us_per_post"],
            ),
            row("publisher_posts_per_s", written / publishing_s, "posts/s", written / baseline_s),
            row(
                "publisher_inputs_to_publishing_per_s",
                posts / inputs_s,
                "pending posts/s",
                baseline,
                events_per_s=round(2 * posts / inputs_s, 1),
                **inputs.per_post(posts),
                note="PendingPostCreated + CreditsDebited handled as the consumer does (handle_batch)",
            ),
            row(
                "publisher_end_to_end_pending_posts_per_s",
                posts / (inputs_s + publishing_s),
                "pending posts/s",
                baseline,
            ),
        ]
    finally:
        gc.unfreeze()
        await db.close()
        await drop_database(server_url, name)


async def _baseline(db: Database, posts: int, batch_size: int, org: str, brand: str) -> Meter:
    """The same rows as the publishing loop writes, by batched plain statements."""
    await db.pool.execute(
        """
        DROP TABLE IF EXISTS baseline_posts, baseline_outbox, baseline_pending;
        CREATE TABLE baseline_posts (LIKE posts INCLUDING ALL);
        CREATE TABLE baseline_outbox (LIKE outbox INCLUDING ALL);
        CREATE TABLE baseline_pending (LIKE pending_posts INCLUDING ALL);
        """
    )
    ids = [uuid.uuid4() for _ in range(posts)]
    await db.pool.execute(
        "INSERT INTO baseline_pending (id, organization_id, status) SELECT unnest($1::uuid[]), $2, 'PUBLISHING'",
        ids,
        uuid.UUID(org),
    )
    # What the loop writes per outbox row: a ~900-byte CloudEvent and five headers.
    payload = json.dumps({"data": "x" * 900}).encode()
    headers = [("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"), ("content-type", "application/json")] * 2
    now = datetime.now(UTC)
    meter = Meter(db)
    await meter.__aenter__()
    for i in range(0, posts, batch_size):
        chunk = ids[i : i + batch_size]
        async with db.transaction() as conn:
            await conn.execute(
                "UPDATE baseline_pending SET status = 'PUBLISHED', completed_at = now() WHERE id = ANY($1::uuid[])",
                chunk,
            )
            rows = [(pid, p) for pid in chunk for p in PLATFORMS]
            await conn.execute(
                """
                INSERT INTO baseline_posts (id, organization_id, pending_post_id, run_id, schedule_id, brand_profile_id,
                    material_id, social_account_id, platform, angle, content, external_id, external_url, published_at)
                SELECT gen_random_uuid(), $1, pid, pid, pid, $2, pid, pid, p, 'USER_BENEFIT', 'content', 'x',
                       'https://x', $5
                FROM unnest($3::uuid[], $4::text[]) AS r(pid, p)
                """,
                uuid.UUID(org),
                uuid.UUID(brand),
                [r[0] for r in rows],
                [r[1] for r in rows],
                now,
            )
            n = len(chunk) * 5  # 2 PostPublished on 2 topics each, 1 ScheduleRunCompleted
            await conn.execute(
                """
                INSERT INTO baseline_outbox (event_id, event_type, topic, key, payload, headers)
                SELECT e, t, topic, k, p, $6::jsonb
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::bytea[]) AS r(e, t, topic, k, p)
                """,
                [uuid.uuid4() for _ in range(n)],
                ["PostPublished"] * n,
                ["bench.publisher.events"] * n,
                [org.encode()] * n,
                [payload] * n,
                headers,
            )
    await meter.__aexit__()
    return meter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="rounds at once (PUBLISHER_PUBLISH_WORKERS)")
    parser.add_argument("--batch", type=int, default=200, help="input records per transaction (the consumer's batch)")
    parser.add_argument("--concurrency", type=int, default=1, help="input batches at once (1: one consumer)")
    parser.add_argument("--database-url", default=ServiceSettings.for_service("publisher").database_url)
    args = parser.parse_args()
    for result in asyncio.run(
        run(args.posts, args.database_url, args.batch_size, args.workers, args.batch, args.concurrency)
    ):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
