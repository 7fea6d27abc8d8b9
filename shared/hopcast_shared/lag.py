"""Consumer lag: how many messages a service's consumer group has yet to handle, per topic.

Measured from outside the consumer, the way an exporter would: the log end offset of each
partition minus the group's committed offset (the beginning of the log where the group has
committed nothing yet, since consumers start from the earliest offset). Every replica
reports its whole group, so dashboards take the max across replicas, not the sum.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hopcast_shared import metrics
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 15.0


class LagProbe:
    """Measures one consumer group's lag over its topics (prefixed names), with clients kept open."""

    def __init__(self, kafka: KafkaSettings, group: str, topics: Sequence[str]) -> None:
        self._kafka = kafka
        self.group = group
        self.topics = [kafka.topic(name) for name in topics]
        self._admin: AIOKafkaAdminClient | None = None
        # No group: this consumer only reads offsets, it never joins or commits.
        self._offsets: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(**connection_kwargs(self._kafka))
        await self._admin.start()
        self._offsets = AIOKafkaConsumer(enable_auto_commit=False, **connection_kwargs(self._kafka))
        await self._offsets.start()

    async def close(self) -> None:
        if self._offsets is not None:
            await self._offsets.stop()
            self._offsets = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def measure(self) -> dict[str, int]:
        """Messages behind, per topic (0 for a topic the group is caught up on)."""
        if self._admin is None or self._offsets is None:
            await self.start()
        assert self._admin is not None and self._offsets is not None
        # Described each time: partitions may have been added since.
        described = await self._admin.describe_topics(self.topics)
        partitions = [
            TopicPartition(topic["topic"], p["partition"])
            for topic in described
            if topic["error_code"] == 0
            for p in sorted(topic["partitions"], key=lambda p: int(p["partition"]))
        ]
        if not partitions:
            return {}
        committed: dict[TopicPartition, Any] = await self._admin.list_consumer_group_offsets(
            self.group, partitions=partitions
        )
        ends: dict[TopicPartition, int] = await self._offsets.end_offsets(partitions)
        starts: dict[TopicPartition, int] = await self._offsets.beginning_offsets(partitions)
        lag = dict.fromkeys(self.topics, 0)
        for tp in partitions:
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            lag[tp.topic] += max(0, ends[tp] - position)
        return lag


async def report_lag(probe: LagProbe, service: str) -> dict[str, int]:
    """Measure once and set `hopcast_consumer_lag{service, topic}`."""
    lag = await probe.measure()
    for topic, behind in lag.items():
        metrics.CONSUMER_LAG.labels(service, topic).set(behind)
    return lag


async def lag_loop(
    kafka: KafkaSettings, service: str, topics: Sequence[str], interval_s: float = LAG_INTERVAL_S
) -> None:
    """Report the lag every `interval_s` until cancelled; a failed measurement is logged and retried."""
    probe = LagProbe(kafka, service, topics)
    try:
        while True:
            try:
                await report_lag(probe, service)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("consumer lag not measured", exc_info=True, extra={"service": service})
                await probe.close()
            await asyncio.sleep(interval_s)
    finally:
        await probe.close()
