"""The fair feed: rounds shared between organizations as records arrive, offsets committed up to
each partition's first record not handled, a failed round read again from there."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from hopcast_shared.fair_feed import FairFeed
from hopcast_shared.testing import as_record


def _record(partition: int, offset: int, key: bytes) -> ConsumerRecord[Any, Any]:
    return dataclasses.replace(as_record(b"{}", topic="t"), partition=partition, offset=offset, key=key)


class FakeKafka:
    """What the feed uses of an AIOKafkaConsumer."""

    def __init__(self, partitions: int = 2) -> None:
        self.assigned = {TopicPartition("t", p) for p in range(partitions)}
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


class FakeConsumer:
    service = "test"

    def __init__(self, fail_rounds: int = 0) -> None:
        self.rounds: list[list[tuple[int, int, bytes]]] = []
        self.fail_rounds = fail_rounds
        self.handled = asyncio.Event()

    async def handle_round(self, records: Sequence[ConsumerRecord[Any, Any]]) -> list[str]:
        self.rounds.append([(r.partition, r.offset, r.key) for r in records])
        self.handled.set()
        if len(self.rounds) <= self.fail_rounds:
            raise ConnectionRefusedError("database away")
        return ["handled"] * len(records)


def test_another_organization_is_in_the_first_round_behind_a_backlog() -> None:
    feed = FairFeed(FakeConsumer(), round_max=200, max_records=20_000)  # type: ignore[arg-type]
    backlog = [_record(0, i, b"A") for i in range(10_000)]
    feed._queue([*backlog, _record(0, 10_000, b"B")])
    first = feed.take_round()
    assert len(first) == 200
    assert (0, 10_000, b"B") in [(r.partition, r.offset, r.key) for r in first]
    # A's records come in their order, round after round, each once.
    seen = [r.offset for r in first if r.key == b"A"]
    while feed._queues:
        seen += [r.offset for r in feed.take_round() if r.key == b"A"]
    assert seen == list(range(10_000))


def test_rounds_go_to_the_queues_served_longest_ago() -> None:
    feed = FairFeed(FakeConsumer(), round_max=2, max_records=100)  # type: ignore[arg-type]
    feed._queue([_record(0, i, bytes([65 + i])) for i in range(5)])  # five organizations, one record each
    keys = [[r.key for r in feed.take_round()] for _ in range(3)]
    assert sorted(k for round_ in keys for k in round_) == [b"A", b"B", b"C", b"D", b"E"]
    assert keys[-1] == [b"E"]


async def test_offsets_are_committed_up_to_the_first_record_not_handled() -> None:
    consumer = FakeConsumer()
    kafka = FakeKafka()
    feed = FairFeed(consumer, round_max=2, max_records=100)  # type: ignore[arg-type]
    records = [_record(0, 0, b"A"), _record(0, 1, b"A"), _record(0, 2, b"A"), _record(0, 3, b"B")]
    await feed.put(records, kafka)
    while len(consumer.rounds) < 2:
        consumer.handled.clear()
        await asyncio.wait_for(consumer.handled.wait(), 5)
    await asyncio.sleep(0.05)
    await feed.stop()
    # Round one takes A0 and B3 (B is not held behind A): the offset stays at A1 until A is done.
    assert consumer.rounds[0] == [(0, 0, b"A"), (0, 3, b"B")]
    assert consumer.rounds[1] == [(0, 1, b"A"), (0, 2, b"A")]
    assert [c[TopicPartition("t", 0)] for c in kafka.commits] == [1, 4]


async def test_a_failed_round_is_read_again_from_the_first_record_not_handled() -> None:
    consumer = FakeConsumer(fail_rounds=1)
    kafka = FakeKafka()
    feed = FairFeed(consumer, round_max=10, max_records=100)  # type: ignore[arg-type]
    await feed.put([_record(1, 5, b"A"), _record(1, 6, b"A")], kafka)
    await asyncio.wait_for(consumer.handled.wait(), 5)
    await asyncio.sleep(0.05)
    assert kafka.seeks == [(TopicPartition("t", 1), 5)] and kafka.commits == []
    # What was fetched before the seek, further on, is dropped; the records from offset 5 come again.
    consumer.handled.clear()
    await feed.put([_record(1, 7, b"A")], kafka)
    await feed.put([_record(1, 5, b"A"), _record(1, 6, b"A"), _record(1, 7, b"A")], kafka)
    await asyncio.wait_for(consumer.handled.wait(), 5)
    await asyncio.sleep(0.05)
    await feed.stop()
    assert consumer.rounds[-1] == [(1, 5, b"A"), (1, 6, b"A"), (1, 7, b"A")]
    assert kafka.commits[-1] == {TopicPartition("t", 1): 8}


def test_a_partition_that_comes_back_further_on_is_taken_where_it_starts() -> None:
    # Another consumer read it meanwhile and committed further: its records are queued from there.
    feed = FairFeed(FakeConsumer(), round_max=10, max_records=100)  # type: ignore[arg-type]
    feed._queue([_record(0, 0, b"A"), _record(0, 1, b"A")])
    assert _taken(feed) == [(0, 0), (0, 1)]
    feed._queue([_record(0, 0, b"A"), _record(0, 900, b"A"), _record(0, 901, b"A")])  # 0: a fetch restarted behind
    assert _taken(feed) == [(0, 900), (0, 901)]


def _taken(feed: FairFeed) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in feed.take_round()]


async def test_a_stopped_feed_lets_a_waiting_fetch_go_and_takes_no_more() -> None:
    # The subscriber's handler waits in put() while the queues are full; stopping the feed must
    # let it return (FastStream's stop waits for it), and what comes after starts no worker.
    consumer = FakeConsumer()
    blocked = asyncio.Event()

    async def handle_round(records: Sequence[ConsumerRecord[Any, Any]]) -> list[str]:
        await blocked.wait()  # the round never ends: the queues stay full
        return ["handled"] * len(records)

    consumer.handle_round = handle_round  # type: ignore[method-assign]
    feed = FairFeed(consumer, round_max=2, max_records=2)  # type: ignore[arg-type]
    kafka = FakeKafka()
    await feed.put([_record(0, 0, b"A"), _record(0, 1, b"A")], kafka)  # taken by the worker
    waiting = asyncio.create_task(feed.put([_record(0, 2, b"A"), _record(0, 3, b"A")], kafka))
    await asyncio.sleep(0.05)
    assert not waiting.done(), "the queues were not full: the test proves nothing"
    await feed.stop()
    await asyncio.wait_for(waiting, 1)
    await feed.put([_record(1, 0, b"B")], kafka)
    assert feed._worker is not None and feed._worker.done()
    assert len(feed._queues) == 2  # records 2 and 3, queued before the stop; nothing after it
    assert kafka.commits == []
