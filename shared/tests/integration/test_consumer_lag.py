"""Consumer lag on the real broker: messages the group has not committed, per topic."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError
from prometheus_client import REGISTRY

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.lag import LagProbe, report_lag
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import ANALYTICS, UPSTREAM

pytestmark = pytest.mark.integration


async def test_lag_counts_what_the_group_has_not_committed(kafka: KafkaSettings, producer: AIOKafkaProducer) -> None:
    group = f"lagger-{uuid.uuid4().hex[:8]}"
    upstream, analytics = kafka.topic(UPSTREAM), kafka.topic(ANALYTICS)
    for i in range(7):
        await producer.send_and_wait(upstream, b"{}", key=f"org-{i}".encode())
    await producer.send_and_wait(analytics, b"{}", key=b"org")
    probe = LagProbe(kafka, group, [UPSTREAM, ANALYTICS])
    try:
        # Nothing committed yet: everything from the beginning of the log is behind. (A fresh
        # broker may need a moment to elect the group's coordinator.)
        for _ in range(50):
            try:
                first = await report_lag(probe, group)
                break
            except GroupCoordinatorNotAvailableError:
                await asyncio.sleep(0.2)
        assert first == {upstream: 7, analytics: 1}
        assert REGISTRY.get_sample_value("hopcast_consumer_lag", {"service": group, "topic": upstream}) == 7

        # The group commits all of upstream but the last message of one partition.
        committer = AIOKafkaConsumer(group_id=group, enable_auto_commit=False, **connection_kwargs(kafka))
        await committer.start()
        try:
            partitions = [TopicPartition(upstream, p) for p in range(kafka.partitions)]
            committer.assign(partitions)
            ends = await committer.end_offsets(partitions)
            busiest = max(partitions, key=lambda tp: ends[tp])
            await committer.commit({tp: ends[tp] - (1 if tp == busiest else 0) for tp in partitions})
        finally:
            await committer.stop()

        assert await report_lag(probe, group) == {upstream: 1, analytics: 1}
        assert REGISTRY.get_sample_value("hopcast_consumer_lag", {"service": group, "topic": upstream}) == 1
        assert REGISTRY.get_sample_value("hopcast_consumer_lag", {"service": group, "topic": analytics}) == 1
    finally:
        await probe.close()
