"""Fair rounds between organizations (`fairness.FairQueues`): who is handled together next."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from hopcast_shared.fairness import FairQueues
from hopcast_shared.settings import ServiceSettings
from hopcast_shared.testing import as_record


def _record(partition: int, offset: int, key: bytes | None) -> ConsumerRecord[Any, Any]:
    return dataclasses.replace(as_record(b"{}", topic="t"), partition=partition, offset=offset, key=key)


def _ids(records: list[ConsumerRecord[Any, Any]]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_more_organizations_than_a_round_holds_are_all_served_in_turn() -> None:
    queues = FairQueues(200)
    queues.extend(_record(0, i, str(i).encode()) for i in range(500))  # 500 organizations, one record each
    rounds = [queues.take_round() for _ in range(3)]
    assert [len(r) for r in rounds] == [200, 200, 100]
    assert sorted(offset for r in rounds for _, offset in _ids(r)) == list(range(500))
    assert not queues and queues.take_round() == []


def test_an_organization_alone_gets_whole_rounds() -> None:
    queues = FairQueues(200)
    queues.extend(_record(0, i, b"A") for i in range(450))
    assert [len(queues.take_round()) for _ in range(3)] == [200, 200, 50]


def test_no_key_or_one_key_on_two_partitions_ties_nothing_together() -> None:
    queues = FairQueues(2)
    queues.extend([_record(0, 0, None), _record(0, 1, None), _record(1, 0, None), _record(1, 1, b"A")])
    first = _ids(queues.take_round())
    assert (0, 0) in first and (1, 0) in first  # each partition's own queue, served at once


def test_forgotten_partitions_leave_nothing_behind() -> None:
    queues = FairQueues(10)
    queues.extend([_record(0, 0, b"A"), _record(1, 0, b"A")])
    queues.forget({("t", 1)})
    assert len(queues) == 1 and _ids(queues.take_round()) == [(0, 0)]
    with pytest.raises(ValueError, match="at least one"):
        FairQueues(0)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40), max_size=12),
    limit=st.integers(min_value=1, max_value=30),
)
def test_every_record_once_in_its_organizations_order_and_rounds_bounded(sizes: list[int], limit: int) -> None:
    queues = FairQueues(limit)
    offset = 0
    for org, size in enumerate(sizes):
        queues.extend(_record(0, offset + i, f"org-{org}".encode()) for i in range(size))
        offset += size
    rounds = []
    while queues:
        rounds.append(queues.take_round())

    assert all(1 <= len(r) <= limit and _ids(r) == sorted(_ids(r)) for r in rounds)
    flat = [r for round_ in rounds for r in round_]
    assert sorted(r.offset for r in flat) == list(range(offset))
    for org in range(len(sizes)):  # each organization's records come out in their order
        mine = [r.offset for r in flat if r.key == f"org-{org}".encode()]
        assert mine == sorted(mine)
    # Every organization with records is in the first round when they fit in it.
    waiting = sum(1 for s in sizes if s)
    if rounds and waiting <= limit:
        assert len({r.key for r in rounds[0]}) == waiting


def test_the_window_must_hold_a_round() -> None:
    with pytest.raises(ValueError, match="consumer_window_max_records"):
        ServiceSettings(name="x", database_url="postgresql://h/db", http_port=1, consumer_window_max_records=10)
