"""A consumer's read-ahead, shared fairly between organizations while it is being read.

FastStream hands the fetched records to `FairFeed.put`, which only queues them: one queue per
partition and organization (the record's key). A worker takes rounds of at most
`consumer_batch_max` records from the queues (`fairness.FairQueues`) and has the consumer handle each
round (lanes and transactions as a fetched batch had). An organization whose event arrives
behind another's backlog is in the next round, whatever the backlog; each queue keeps its
order, and rounds run one after another, so an organization never has two at once.

Offsets: after each round, each partition's offset is committed up to its first record not
handled yet (offset-after-commit holds per record). When the queues hold `max_records`, `put`
waits: the fetch loop stops reading until the worker has caught up. An infrastructure failure
(the consumer raises) drops the queues and seeks every partition back to its first record not
handled, so the records come again (the inbox makes those already handled duplicates); until
that record comes, what was fetched before the seek is dropped, and a record behind the last
one queued of its partition (a fetch restarted after a rebalance) too: a partition's records
are queued once and in order. Partitions this consumer no longer owns are forgotten before each
round.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.fairness import FairQueues

log = logging.getLogger(__name__)


class FairFeed:
    """Fetched records in fair rounds, committed as they are handled (see the module's doc)."""

    def __init__(self, consumer: EventConsumer, *, round_max: int, max_records: int) -> None:
        self._consumer = consumer
        self._max_records = max(max_records, round_max)
        self._queues = FairQueues(round_max)
        # Per partition: offsets queued or being handled (a heap, with those done removed
        # lazily), the next offset expected from the fetch, and the offset last committed.
        self._pending: dict[TopicPartition, list[int]] = {}
        self._done: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._sought: dict[TopicPartition, int] = {}  # where a partition was sought back to
        self._committed: dict[TopicPartition, int] = {}
        self._kafka: Any = None  # the AIOKafkaConsumer, known from the first message
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._worker: asyncio.Task[None] | None = None
        self._stopped = False

    async def put(self, records: Sequence[ConsumerRecord[Any, Any]], kafka_consumer: Any) -> None:
        """Queue fetched records; wait while the queues are full. Once stopped, drop them: their
        offsets are not committed, so they come again to whoever reads the partition next."""
        if self._stopped:
            return
        self._kafka = kafka_consumer
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"fair-feed-{self._consumer.service}")
        self._queue(records)
        await self._room.wait()

    def _queue(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        accepted = []
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            sought = self._sought.get(tp)
            if sought is not None:
                if record.offset != sought:
                    continue  # fetched before the seek back
                del self._sought[tp]
            elif record.offset < self._next.get(tp, record.offset):
                continue  # queued already (the fetch restarted behind what was queued)
            # A gap is no loss: a transaction's markers take offsets, and a partition that
            # came back after another consumer read it starts where that one committed.
            self._next[tp] = record.offset + 1
            heapq.heappush(self._pending.setdefault(tp, []), record.offset)
            accepted.append(record)
        self._queues.extend(accepted)
        if self._queues:
            self._arrived.set()
        if len(self._queues) >= self._max_records:
            self._room.clear()

    async def stop(self) -> None:
        """For good: the worker ends, and a fetch that waits for room, or comes after, returns at
        once (a FastStream subscriber stops only once its handler returns)."""
        self._stopped = True
        self._room.set()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def take_round(self) -> list[ConsumerRecord[Any, Any]]:
        """The next fair round (`fairness.FairQueues`); makes room for the fetch."""
        taken = self._queues.take_round()
        if len(self._queues) < self._max_records:
            self._room.set()
        return taken

    async def _work(self) -> None:
        while True:
            if not self._queues:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            try:
                await self._one_round()
            except Exception:  # the feed must go on whatever happens, or the fetch waits for ever
                log.exception("the fair feed failed; going on in a second")
                await asyncio.sleep(1.0)

    async def _one_round(self) -> None:
        self._drop_revoked()
        records = self.take_round()
        if not records:
            return
        try:
            await self._consumer.handle_round(records)
        except Exception:
            log.exception("a round failed; its partitions are read again from their committed offsets")
            await self._start_again()
            await asyncio.sleep(1.0)  # not a hot loop while the database is away
            return
        await self._commit(records)

    async def _commit(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            self._done.setdefault(tp, set()).add(record.offset)
            offsets[tp] = 0
        for tp in offsets:
            offsets[tp] = self._first_not_done(tp)
        due = {tp: offset for tp, offset in offsets.items() if self._committed.get(tp) != offset}
        if not due:
            return
        try:
            await self._kafka.commit(due)
        except Exception:  # a rebalance took the partition: its new owner reads from what was committed
            log.warning("committing offsets failed; the records come again to whoever owns them", exc_info=True)
            return
        self._committed.update(due)

    def _drop_revoked(self) -> None:
        """Forget what was queued of partitions this consumer no longer owns."""
        assigned = self._kafka.assignment() if self._kafka is not None else set()
        revoked = {tp for tp in self._next if tp not in assigned}
        if revoked:
            self._forget(revoked)

    async def _start_again(self) -> None:
        """Drop what is queued and read every owned partition again from its first record not
        handled yet (what its committed offset is, or is about to be)."""
        first = {tp: self._first_not_done(tp) for tp in self._next}
        self._forget(set(first))
        assigned = self._kafka.assignment()
        for tp, offset in first.items():
            if tp in assigned:
                self._kafka.seek(tp, offset)
                self._sought[tp] = offset

    def _first_not_done(self, tp: TopicPartition) -> int:
        pending, done = self._pending.get(tp, []), self._done.get(tp, set())
        while pending and pending[0] in done:
            done.discard(heapq.heappop(pending))
        return pending[0] if pending else self._next[tp]

    def _forget(self, partitions: set[TopicPartition]) -> None:
        self._queues.forget({(tp.topic, tp.partition) for tp in partitions})
        for tp in partitions:
            self._pending.pop(tp, None)
            self._done.pop(tp, None)
            self._next.pop(tp, None)
            self._sought.pop(tp, None)
            self._committed.pop(tp, None)
        if len(self._queues) < self._max_records:
            self._room.set()
