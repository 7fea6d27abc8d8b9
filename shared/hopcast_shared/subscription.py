"""How a service's consumer is subscribed: FastStream subscribers on its topics, offsets
committed only after the consumer's transactions committed, a failure left unacknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.fair_feed import FairFeed
from hopcast_shared.settings import KafkaSettings

log = logging.getLogger(__name__)


def subscribe(
    broker: KafkaBroker,
    consumer: EventConsumer,
    topics: Sequence[str],
    *,
    kafka: KafkaSettings,
    workers_per_topic: int = 1,
    batch_max: int = 1,
    batch_timeout_ms: int = 20,
    window_max_records: int | None = None,
    window_max_bytes: int = 1024 * 1024,
    fetch_min_bytes: int = 1,
    fetch_max_wait_ms: int = 500,
) -> FairFeed | None:
    """Register the FastStream subscriber(s) of the consumer; returns the fair feed of a
    batched one (for the runtime to stop), None otherwise.

    With `batch_max` > 1 the subscriber reads ahead: what Kafka has ready, about
    `window_max_bytes` per fetch (the broker holding a fetch up to `fetch_max_wait_ms` until
    `fetch_min_bytes` are ready; the subscriber waiting at most `batch_timeout_ms` when nothing
    is), goes to a `FairFeed`, which queues up to `window_max_records` records (`batch_max` when
    not given) by partition and organization and has the consumer handle them in fair rounds of up
    to `batch_max` records, committing each partition's offset up to its first record not yet
    handled after each round (the fetch waits while the feed is full). aiokafka keeps one fetch
    per partition ahead of what it has handed out: about twice `window_max_bytes` per broker, raw,
    plus what is queued, is what reading ahead costs in memory.

    Otherwise NACK_ON_ERROR: the offset is committed after `handle_record` returns, its
    transaction committed; if it raises, the consumer seeks back and the record comes again.
    """
    if batch_max > 1:
        feed = FairFeed(consumer, round_max=batch_max, max_records=window_max_records or batch_max)
        batches = broker.subscriber(
            *(kafka.topic(name) for name in topics),
            group_id=consumer.group_id,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            batch=True,
            max_records=max(batch_max, window_max_records or batch_max),
            batch_timeout_ms=batch_timeout_ms,
            max_partition_fetch_bytes=window_max_bytes,
            fetch_max_bytes=window_max_bytes,
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_wait_ms=fetch_max_wait_ms,
            title=f"{consumer.service}:{'+'.join(topics)}",
            decoder=_the_message,
        )

        async def on_batch(batch: tuple[Any, Any]) -> None:
            records, kafka_consumer = batch
            await feed.put(tuple(records) if isinstance(records, tuple | list) else (records,), kafka_consumer)

        batches(on_batch)
        return feed

    # One consumer for all topics (one group join); with more workers, one per topic, since
    # FastStream's per-partition concurrency takes a single topic.
    groups = [list(topics)] if workers_per_topic == 1 else [[name] for name in topics]
    for names in groups:
        subscriber = broker.subscriber(
            *(kafka.topic(name) for name in names),
            group_id=consumer.group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            max_workers=workers_per_topic,
            title=f"{consumer.service}:{'+'.join(names)}",
        )

        async def on_message(record: Any) -> None:
            await _unacknowledged_on_error(consumer.handle_record(record))

        subscriber(on_message)
    return None


async def _the_message(message: Any) -> tuple[Any, Any]:
    """A batch's body: its raw records and its consumer, through which the feed commits and seeks.
    Taking the consumer as FastStream's `Context("message")` instead would resolve it in a worker
    thread for every batch (FastDepends runs a synchronous field there): a thread hop and the GIL
    handed back and forth, a tenth of a service's CPU at 50 runs/s. Not the message itself:
    FastStream keeps the decoded body on the message, and a message holding itself (and its
    records) would wait for the cycle collector instead of going when the batch is queued."""
    return message.raw_message, message.consumer


async def _unacknowledged_on_error(handling: Awaitable[object]) -> None:
    try:
        await handling
    except Exception:
        log.exception("message(s) left unacknowledged; Kafka will deliver them again")
        # Back off before Kafka redelivers, so an outage is not a hot loop.
        await asyncio.sleep(1.0)
        raise
