"""Outbox relay events per second: the kernel's OutboxRelay draining N rows written beforehand,
beside a raw aiokafka producer sending the same N messages to the same broker in the same run.

- outbox_relay_events_per_s: `OutboxRelay` as a service runs it (its own loop, the producer of
  `make_producer`, the batch size of <SERVICE>_OUTBOX_BATCH_SIZE, tracing set up as a service
  does), from start until it has had N rows acknowledged by Kafka and deleted them. The rows are
  CloudEvents of the contract (about 600 bytes, five headers with a trace context), keyed by 1,000
  organizations, on a topic of 6 partitions, written in committed transactions before the clock
  starts.
  The relay runs as without OTEL_EXPORTER_OTLP_ENDPOINT (the local default); the row also
  gives the rate with a PRODUCER span per row, as when traces are exported.
- baseline: `raw_aiokafka_produce_per_s`, a producer with the same settings sending the same N
  payloads, keys and headers (every send, then every ack): the ceiling the relay is compared with.

Usage: .venv/bin/python bench/outbox_relay.py [--events 20000] [--batch 500]
       [--bootstrap HOST:PORT] [--database-url URL]
(defaults: KAFKA_BOOTSTRAP_SERVERS and a database server of the local stack, `make infra-up`).
Prints one JSON row. A fresh database and topic are made and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import bench_kafka, drop_database, fresh_database

from hopcast_shared.contract.examples import example_model
from hopcast_shared.db import Database
from hopcast_shared.kafka import connection_kwargs, make_producer
from hopcast_shared.outbox import OutboxRelay, OutboxRow, event_rows, write_outbox
from hopcast_shared.settings import KafkaSettings, ServiceSettings, default_database_url
from hopcast_shared.telemetry import inject_headers, setup_tracing, tracer

PARTITIONS = 6


async def _topic(kafka: KafkaSettings, name: str, *, delete: bool = False) -> None:
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        if delete:
            await admin.delete_topics([name])
        else:
            await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()


KAFKA_UNPREFIXED = KafkaSettings(topic_prefix="")  # the topic is given whole


def _rows(n: int, topic: str) -> list[OutboxRow]:
    """What handlers write: contract events, each made inside its handler's span."""
    orgs = [str(uuid.uuid4()) for _ in range(1000)]
    rows = []
    for i in range(n):
        data = example_model("CreditsDebited", run_id=str(uuid.uuid4()))
        with tracer.start_as_current_span("bench handler"):
            rows += event_rows(
                KAFKA_UNPREFIXED,
                [data],
                organization_id=orgs[i % len(orgs)],
                source="hopcast/bench",
                correlation_id=None,
                causation_id=None,
                trace=inject_headers(),
                topics=[topic],
            )
    return rows


async def _relay(db: Database, kafka: KafkaSettings, rows: list[OutboxRow], batch: int, *, spans: bool) -> float:
    for i in range(0, len(rows), 5000):
        async with db.transaction() as conn:
            await write_outbox(conn, rows[i : i + 5000])
    await db.pool.execute("VACUUM ANALYZE outbox")

    async def producer() -> Any:
        p = make_producer(kafka, "bench-outbox")
        await p.start()
        return p

    relay = OutboxRelay(db, producer, service="bench", batch_size=batch, producer_spans=spans)
    started = time.perf_counter()
    await relay.start()
    try:
        while relay.published < len(rows):  # noqa: ASYNC110 (the relay has no event to wait on)
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - started
    finally:
        await relay.stop()
    left = await db.pool.fetchval("SELECT count(*) FROM outbox")
    assert left == 0, f"{left} rows left in the outbox"
    return seconds


async def _raw(kafka: KafkaSettings, rows: list[OutboxRow]) -> float:
    producer = make_producer(kafka, "bench-raw")
    await producer.start()
    try:
        messages = [(r.topic, r.payload, r.key, [(k, v.encode()) for k, v in r.headers]) for r in rows]
        started = time.perf_counter()
        futures = [await producer.send(t, p, key=k, headers=h) for t, p, k, h in messages]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def run(events: int, batch: int, bootstrap: str, server_url: str) -> dict[str, object]:
    setup_tracing("bench")
    kafka, _ = bench_kafka(bootstrap)
    topic = f"bench.outbox.{uuid.uuid4().hex[:8]}"
    await _topic(kafka, topic)
    name, url = await fresh_database(server_url, "bench_outbox")
    db = await Database.open(url, max_size=4)
    try:
        rows = _rows(events, topic)
        raw_s = await _raw(kafka, rows)  # also warms the broker's partitions up for both
        relay_s = await _relay(db, kafka, rows, batch, spans=False)
        spans_s = await _relay(db, kafka, rows, batch, spans=True)
    finally:
        await db.close()
        await drop_database(server_url, name)
        await _topic(kafka, topic, delete=True)
    value, baseline = events / relay_s, events / raw_s
    return {
        "name": "outbox_relay_events_per_s",
        "value": round(value, 1),
        "unit": "events/s",
        "baseline_name": "raw_aiokafka_produce_per_s",
        "baseline_value": round(baseline, 1),
        "ratio": round(value / baseline, 3),
        "events": events,
        "batch": batch,
        "partitions": PARTITIONS,
        "payload_bytes": len(rows[0].payload),
        "seconds": round(relay_s, 3),
        "baseline_seconds": round(raw_s, 3),
        # With OTEL_EXPORTER_OTLP_ENDPOINT set the relay makes a PRODUCER span per row.
        "with_producer_spans_events_per_s": round(events / spans_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=ServiceSettings.model_fields["outbox_batch_size"].default)
    parser.add_argument("--bootstrap", default=KafkaSettings().bootstrap_servers)
    parser.add_argument(
        "--database-url", default=os.environ.get("SCHEDULER_DATABASE_URL", default_database_url("scheduler"))
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.events, args.batch, args.bootstrap, args.database_url))))


if __name__ == "__main__":
    main()
