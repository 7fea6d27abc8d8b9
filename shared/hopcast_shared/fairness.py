"""Fair shares of a consumer's read-ahead window: which records go in each transaction.

A window can hold thousands of one organization's records ahead of another's on the same
partition. Handled in partition order, the other organization would wait for all of them;
here each transaction takes its records round robin from the organizations' queues, so every
organization in the window has records in the first transaction of its lane. Pure: no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence


def round_robin_transactions(queues: Sequence[Sequence[int]], limit: int) -> Iterator[list[int]]:
    """The transactions, in the order to run them, for organizations' queues of positions.

    Each queue holds one organization's positions in the window, in their order. A transaction
    holds at most `limit` positions: the organizations waiting share it equally (what one cannot
    use goes to the others), and the next transaction starts with the organization after the
    last one served, so that more organizations than `limit` are all served in turn. An
    organization's positions come out in their order, each in one transaction; a transaction's
    positions are sorted, so records keep the window's order (consecutive events of a type stay
    together for a batched handler).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    waiting: deque[tuple[Sequence[int], int]] = deque((queue, 0) for queue in queues if queue)
    while waiting:
        transaction: list[int] = []
        while waiting and len(transaction) < limit:
            share = max(1, (limit - len(transaction)) // len(waiting))
            for _ in range(len(waiting)):
                if len(transaction) >= limit:
                    break
                queue, taken = waiting.popleft()
                end = min(len(queue), taken + share, taken + limit - len(transaction))
                transaction += queue[taken:end]
                if end < len(queue):
                    waiting.append((queue, end))
        transaction.sort()
        yield transaction
