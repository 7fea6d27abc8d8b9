"""Fairness between organizations: how long an event of one organization waits behind another
organization's burst queued on the same partition, beside how long the burst itself takes.

- fairness_other_org_p99_ms: billing as a process (its real consumer, FastStream subscriber and
  handlers, `python -m`, the e2e suite's ServiceSet) on the real broker and database. Each trial
  sends --burst CreditsGranted of a new organization A to partition 0 of upstream.events (every
  send, then every ack), then one CreditsGranted of a new organization B to the same partition;
  the time from B's ack to its ledger row being committed is the trial's latency. The row's value
  is the p99 over --trials trials (nearest rank: the largest of 20).
- baseline: `burst_p50_ms`, the median time from A's first send to A's last ledger row: what B
  waited when records were handled in partition order.

Usage: .venv/bin/python bench/fairness.py [--trials 20] [--burst 10000]
       [--bootstrap HOST:PORT] [--database-url URL]
(defaults: KAFKA_BOOTSTRAP_SERVERS and a database server of the local stack, `make infra-up`).
Prints one JSON row. A fresh database and topics are made; the database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from common import bench_kafka, drop_database, fresh_database, grant_services

from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings, default_database_url
from hopcast_shared.topics import UPSTREAM, ensure_topics
from hopcast_stack.services import FAST_SERVICE_ENV, ServiceSet

PARTITION = 0


def _grant(org: str) -> tuple[bytes, bytes, str]:
    """(key, value, ledger key) of a CreditsGranted of `org`."""
    grant_id = str(uuid.uuid4())
    event = example_event("CreditsGranted", organization_id=org, grant_id=grant_id, amount=1)
    return org.encode(), event.to_json(), f"grant:{grant_id}"


async def _committed_at(db: Database, key: str, *, within: float, interval: float = 0.005) -> float:
    """When the ledger row of `key` is first seen (perf_counter), polling every `interval`."""
    deadline = time.perf_counter() + within
    while True:
        if await db.pool.fetchval("SELECT true FROM ledger WHERE idempotency_key = $1", key):
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{key} not handled within {within}s")
        await asyncio.sleep(interval)


async def _trial(producer: AIOKafkaProducer, topic: str, db: Database, burst: int) -> tuple[float, float]:
    """(B's latency, the burst's duration), in seconds."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    grants = [_grant(a) for _ in range(burst)]
    started = time.perf_counter()
    acks = [await producer.send(topic, value, key=key, partition=PARTITION) for key, value, _ in grants]
    await asyncio.gather(*acks)
    key, value, b_ledger = _grant(b)
    await producer.send_and_wait(topic, value, key=key, partition=PARTITION)
    b_sent = time.perf_counter()
    b_done = await _committed_at(db, b_ledger, within=300)
    a_done = await _committed_at(db, grants[-1][2], within=600, interval=0.02)
    return b_done - b_sent, a_done - started


def _p(values: list[float], q: float) -> float:
    ranked = sorted(values)
    return ranked[max(0, math.ceil(q / 100 * len(ranked)) - 1)]


async def run(trials: int, burst: int, bootstrap: str, server_url: str) -> dict[str, Any]:
    base, credentials = bench_kafka(bootstrap)
    kafka = base.model_copy(update={"topic_prefix": f"f{uuid.uuid4().hex[:8]}."})
    await ensure_topics(kafka)
    await grant_services(kafka, credentials)
    name, url = await fresh_database(server_url, "bench_fairness")
    state_dir = Path(tempfile.mkdtemp(prefix="hopcast-bench-fairness-"))
    services = ServiceSet(
        kafka=kafka,
        database_urls={"billing": url},
        state_dir=state_dir,
        extra_env=FAST_SERVICE_ENV,
        credentials=credentials,
    )
    producer = AIOKafkaProducer(enable_idempotence=True, linger_ms=5, **connection_kwargs(kafka))
    db: Database | None = None
    latencies: list[float] = []
    bursts: list[float] = []
    try:
        await services.start()
        await producer.start()
        db = await Database.open(url, max_size=2)
        topic = kafka.topic(UPSTREAM)
        # Warm-up (not measured): the consumer's group joined, its pools and code paths in use.
        key, value, ledger_key = _grant(str(uuid.uuid4()))
        await producer.send_and_wait(topic, value, key=key, partition=PARTITION)
        await _committed_at(db, ledger_key, within=120)
        for _ in range(trials):
            latency, burst_s = await _trial(producer, topic, db, burst)
            latencies.append(latency)
            bursts.append(burst_s)
    finally:
        await producer.stop()
        if db is not None:
            await db.close()
        services.stop()
        with contextlib.suppress(Exception):
            await drop_database(server_url, name)
        if not os.environ.get("HOPCAST_KEEP_BENCH_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)
    value, baseline = 1000 * _p(latencies, 99), 1000 * _p(bursts, 50)
    return {
        "name": "fairness_other_org_p99_ms",
        "value": round(value, 1),
        "unit": "ms",
        "baseline_name": "burst_p50_ms",
        "baseline_value": round(baseline, 1),
        "ratio": round(value / baseline, 3),
        "trials": trials,
        "burst": burst,
        "other_org_p50_ms": round(1000 * _p(latencies, 50), 1),
        "latencies_ms": [round(1000 * s, 1) for s in latencies],
        "bursts_ms": [round(1000 * s, 1) for s in bursts],
        "burst_events_per_s": round(burst / _p(bursts, 50), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--bootstrap", default=KafkaSettings().bootstrap_servers)
    parser.add_argument(
        "--database-url", default=os.environ.get("BILLING_DATABASE_URL", default_database_url("billing"))
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.trials, args.burst, args.bootstrap, args.database_url))))


if __name__ == "__main__":
    main()
