"""FastStream against raw aiokafka: the same handler over the same messages on the same topic,
through the kernel's own wiring (`hopcast_shared.subscription.subscribe`: a FastStream batch
subscriber reading ahead into the fair feed, rounds of up to --batch records, each partition
committed after each round) and through a bare aiokafka consumer loop (getmany, handle, commit).

- faststream_vs_aiokafka_ratio: handler throughput through FastStream divided by that of the raw
  loop (1.0: FastStream costs nothing). Rounds alternate raw and FastStream, each with a fresh
  consumer group reading the topic from the beginning; the clock runs from the first message
  handled to the last (group joins excluded alike); the ratio of the medians is reported.
- The handler decodes each record's JSON (a CloudEvent of the contract, about 600 bytes) and
  counts it, so what differs is the framework around it.

Usage: .venv/bin/python bench/faststream_vs_aiokafka.py [--messages 20000] [--batch 200] [--rounds 3]
       [--bootstrap HOST:PORT]
Prints one JSON row. A fresh topic is made and deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from common import bench_kafka

from hopcast_shared.contract.examples import example_event
from hopcast_shared.kafka import connection_kwargs, make_broker, make_producer
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.subscription import subscribe

PARTITIONS = 6


class Meter:
    """The handler both paths call, and its clock: first to last message handled."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.handled = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def handle(self, values: Sequence[bytes]) -> None:
        if not self.handled:
            self.first = time.perf_counter()
        for value in values:
            json.loads(value)
        self.handled += len(values)
        if self.handled >= self.expect:
            self.last = time.perf_counter()
            self.done.set()

    @property
    def per_s(self) -> float:
        # The first batch's own handling is inside the clock for both paths alike.
        return self.handled / max(self.last - self.first, 1e-9)


async def _produce(kafka: KafkaSettings, topic: str, n: int) -> None:
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    orgs = [str(uuid.uuid4()) for _ in range(1000)]
    producer = make_producer(kafka, "bench-fs")
    await producer.start()
    try:
        futures = []
        for i in range(n):
            event = example_event("CreditsDebited", organization_id=orgs[i % len(orgs)], run_id=str(uuid.uuid4()))
            futures.append(await producer.send(topic, event.to_json(), key=orgs[i % len(orgs)].encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _raw(kafka: KafkaSettings, topic: str, n: int, batch: int) -> float:
    meter = Meter(n)
    consumer = AIOKafkaConsumer(
        topic,
        group_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **connection_kwargs(kafka),
    )
    await consumer.start()
    try:
        while not meter.done.is_set():
            batches = await consumer.getmany(timeout_ms=20, max_records=batch)
            for records in batches.values():
                meter.handle([r.value for r in records])
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return meter.per_s


class _CountingConsumer:
    """What the fair feed needs of the kernel's EventConsumer: its rounds go to the meter."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.service = "bench-fs"
        self.group_id = f"bench-fs-{uuid.uuid4().hex[:8]}"

    async def handle_round(self, records: Sequence[Any]) -> list[str]:
        self.meter.handle([r.value for r in records])
        return ["handled"] * len(records)


async def _faststream(kafka: KafkaSettings, topic: str, n: int, batch: int) -> float:
    meter = Meter(n)
    broker = make_broker(kafka, "bench-fs")
    settings = ServiceSettings(name="bench", database_url="postgresql://unused/bench", http_port=1)
    feed = subscribe(
        broker,
        _CountingConsumer(meter),  # type: ignore[arg-type]
        [topic],
        kafka=kafka,
        batch_max=batch,
        batch_timeout_ms=20,
        window_max_records=settings.consumer_window_max_records,
        window_max_bytes=settings.consumer_window_max_bytes,
    )
    await broker.start()
    try:
        await meter.done.wait()
    finally:
        if feed is not None:
            await feed.stop()
        await broker.stop()
    return meter.per_s


async def run(messages: int, batch: int, rounds: int, bootstrap: str) -> dict[str, object]:
    kafka, _ = bench_kafka(bootstrap)
    topic = f"bench.consume.{uuid.uuid4().hex[:8]}"
    await _produce(kafka, topic, messages)
    raw: list[float] = []
    fs: list[float] = []
    try:
        for _ in range(rounds):
            raw.append(await _raw(kafka, topic, messages, batch))
            fs.append(await _faststream(kafka, topic, messages, batch))
    finally:
        admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
    value, baseline = statistics.median(fs), statistics.median(raw)
    return {
        "name": "faststream_vs_aiokafka_ratio",
        "value": round(value / baseline, 3),
        "unit": "ratio",
        "baseline_name": "raw_aiokafka_consumer_loop",
        "baseline_value": 1.0,
        "ratio": round(value / baseline, 3),
        "faststream_messages_per_s": round(value, 1),
        "aiokafka_messages_per_s": round(baseline, 1),
        "faststream_rounds": [round(x, 1) for x in fs],
        "aiokafka_rounds": [round(x, 1) for x in raw],
        "messages": messages,
        "batch": batch,
        "partitions": PARTITIONS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200, help="records per batch (CONSUMER_BATCH_MAX's default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=KafkaSettings().bootstrap_servers)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages, args.batch, args.rounds, args.bootstrap))))


if __name__ == "__main__":
    main()
