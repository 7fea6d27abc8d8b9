"""The round robin that shares a consumer's read-ahead window between organizations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hopcast_shared.fairness import round_robin_transactions
from hopcast_shared.settings import ServiceSettings


def test_an_organization_behind_a_backlog_of_another_is_in_the_first_transaction() -> None:
    backlog = list(range(10_000))  # organization A's records, then B's one at the end
    transactions = list(round_robin_transactions([backlog, [10_000]], 200))

    assert 10_000 in transactions[0]
    assert len(transactions[0]) == 200  # B's one record leaves its share to A
    assert [p for t in transactions for p in t if p != 10_000] == backlog  # A's order kept
    assert all(len(t) <= 200 for t in transactions)


def test_more_organizations_than_a_transaction_holds_are_all_served_in_turn() -> None:
    queues = [[2 * i, 2 * i + 1] for i in range(500)]  # 500 organizations, two records each
    transactions = list(round_robin_transactions(queues, 200))

    assert [len(t) for t in transactions] == [200] * 5
    # Each organization's first record is handled before any organization's second.
    first_round = {p for t in transactions[:3] for p in t if p < 1000}
    assert sum(1 for p in first_round if p % 2 == 0) == 500


def test_an_organization_alone_gets_whole_transactions() -> None:
    assert list(round_robin_transactions([list(range(450))], 200)) == [
        list(range(200)),
        list(range(200, 400)),
        list(range(400, 450)),
    ]
    assert list(round_robin_transactions([], 200)) == []
    with pytest.raises(ValueError, match="limit"):
        list(round_robin_transactions([[1]], 0))


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    limit=st.integers(min_value=1, max_value=30),
)
def test_every_record_once_in_its_organizations_order_and_transactions_bounded(sizes: list[int], limit: int) -> None:
    queues, position = [], 0
    for size in sizes:
        queues.append(list(range(position, position + size)))
        position += size
    transactions = list(round_robin_transactions(queues, limit))

    assert all(1 <= len(t) <= limit and t == sorted(t) for t in transactions)
    flat = [p for t in transactions for p in t]
    assert sorted(flat) == list(range(position))
    for queue in queues:  # each organization's records come out in their order
        assert [p for p in flat if p in set(queue)] == queue
    # Every organization with records is in the first transaction when they fit in it.
    if transactions and sum(1 for q in queues if q) <= limit:
        assert all(q[0] in transactions[0] for q in queues if q)


def test_the_window_must_hold_a_transaction() -> None:
    with pytest.raises(ValueError, match="consumer_window_max_records"):
        ServiceSettings(name="x", database_url="postgresql://h/db", http_port=1, consumer_window_max_records=10)
