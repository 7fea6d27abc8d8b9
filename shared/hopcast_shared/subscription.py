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
) -> None:
    """Register the FastStream subscriber(s) of the consumer.

    NACK_ON_ERROR: the offsets are committed after `handle_record` (or `handle_batch`) returns,
    its transaction(s) committed; if it raises, the consumer seeks back to the first record
    it was given on each partition and they come again.

    With `batch_max` > 1 the subscriber takes what Kafka has ready as one read-ahead window,
    up to `window_max_records` records (`batch_max` when not given) and about
    `window_max_bytes` per fetch (waiting at most `batch_timeout_ms` when nothing is ready),
    and hands it to `handle_batch`, which shares it between organizations in transactions of
    up to `batch_max` records: one commit per transaction under load, one record at a time
    when idle. aiokafka keeps one fetch per partition ahead of what it has handed out, and a
    fetch answer holds at most `window_max_bytes` whatever the partitions: about twice that
    per broker, raw, is what the window costs in memory. The offsets are committed when the
    whole window is handled.
    """
    if batch_max > 1:
        batches = broker.subscriber(
            *(kafka.topic(name) for name in topics),
            group_id=consumer.group_id,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=max(batch_max, window_max_records or batch_max),
            batch_timeout_ms=batch_timeout_ms,
            max_partition_fetch_bytes=window_max_bytes,
            fetch_max_bytes=window_max_bytes,
            title=f"{consumer.service}:{'+'.join(topics)}",
        )

        # The body is the raw records (the broker's decoder, kafka.make_broker): taking it rather
        # than the message object spares FastStream a context lookup per batch.
        async def on_batch(records: Any) -> None:
            await _unacknowledged_on_error(consumer.handle_batch(records if isinstance(records, tuple) else (records,)))

        batches(on_batch)
        return

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


async def _unacknowledged_on_error(handling: Awaitable[object]) -> None:
    try:
        await handling
    except Exception:
        log.exception("message(s) left unacknowledged; Kafka will deliver them again")
        # Back off before Kafka redelivers, so an outage is not a hot loop.
        await asyncio.sleep(1.0)
        raise
