"""Fair rounds between organizations: which records a consumer handles together next.

Records are queued per partition and organization (the record's key): a key found on several
partitions (none, or a forged one) ties nothing together, and Kafka's order is per partition.
A round takes at most `round_max` records, shared equally between the queues waiting (what one
cannot use goes to the others), starting with the queues served longest ago: an organization
whose record arrives behind thousands of another's is in the next round, and more
organizations than a round holds are all served in turn. Each queue gives its records in
order, each once; a round's records are in their partitions' order (the consumer then groups a
transaction's events by handler for a batched one: `consumer._by_handler`). Pure: no I/O.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRecord

QueueKey = tuple[str, int, bytes]


class FairQueues:
    """Records waiting to be handled, by partition and organization, taken in fair rounds."""

    def __init__(self, round_max: int) -> None:
        if round_max < 1:
            raise ValueError("a round must hold at least one record")
        self.round_max = round_max
        self._queues: OrderedDict[QueueKey, deque[ConsumerRecord[Any, Any]]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        """Queue records, each behind those of its partition and key queued before."""
        for record in records:
            key = (record.topic, record.partition, record.key or b"")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
            queue.append(record)
            self._count += 1

    def take_round(self) -> list[ConsumerRecord[Any, Any]]:
        """The next round (empty when nothing waits)."""
        taken: list[ConsumerRecord[Any, Any]] = []
        while self._queues and len(taken) < self.round_max:
            share = max(1, (self.round_max - len(taken)) // len(self._queues))
            for key in list(self._queues):
                if len(taken) >= self.round_max:
                    break
                queue = self._queues[key]
                for _ in range(min(share, self.round_max - len(taken), len(queue))):
                    taken.append(queue.popleft())
                if queue:
                    self._queues.move_to_end(key)  # served: the others go first next time
                else:
                    del self._queues[key]
        self._count -= len(taken)
        taken.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return taken

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Drop what is queued of these (topic, partition)s."""
        for key in [k for k in self._queues if (k[0], k[1]) in partitions]:
            self._count -= len(self._queues.pop(key))
