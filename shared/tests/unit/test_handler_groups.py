"""A transaction's records in groups of one handler (`consumer._by_handler`): each organization's
queue keeps its order, whatever the interleaving, and a type's events scattered between other
organizations' reach its handler together."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hopcast_shared.consumer import _by_handler, _Ready
from hopcast_shared.testing import as_record


async def drafted(*_: Any) -> None: ...


async def debited(*_: Any) -> None: ...


async def published(*_: Any) -> None: ...


HANDLERS = (drafted, debited, published)


def _ready(n: int, partition: int, key: bytes, handler: Any) -> _Ready:
    record = dataclasses.replace(as_record(b"{}", topic="t"), partition=partition, offset=n, key=key)
    return _Ready(record, None, None, handler)  # type: ignore[arg-type]


def _names(groups: list[tuple[Any, list[_Ready]]]) -> list[tuple[str, list[str]]]:
    return [(h.__name__, [r.record.key.decode() + str(r.record.offset) for r in rs]) for h, rs in groups]


def test_a_types_events_between_other_organizations_go_to_its_handler_together() -> None:
    todo = [
        _ready(0, 0, b"A", drafted),
        _ready(1, 0, b"B", published),
        _ready(2, 0, b"C", drafted),
        _ready(3, 0, b"D", published),
        _ready(4, 0, b"E", drafted),
    ]
    assert _names(_by_handler(todo)) == [("drafted", ["A0", "C2", "E4"]), ("published", ["B1", "D3"])]


def test_an_organizations_events_keep_their_order_and_its_runs_stay_whole() -> None:
    todo = [
        _ready(0, 0, b"A", drafted),
        _ready(1, 0, b"A", drafted),
        _ready(2, 0, b"B", published),
        _ready(3, 0, b"A", published),
        _ready(4, 0, b"B", drafted),
    ]
    # A's two drafts stay together; A's publication comes after them, B's draft after B's publication.
    assert _names(_by_handler(todo)) == [
        ("drafted", ["A0", "A1"]),
        ("published", ["A3", "B2"]),
        ("drafted", ["B4"]),
    ]


RECORDS = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from([b"A", b"B", b"C", b"D"]), st.sampled_from(HANDLERS)),
    max_size=60,
)


@given(RECORDS)
def test_every_record_is_handled_once_in_its_queues_order(spec: list[tuple[int, bytes, Any]]) -> None:
    todo = [_ready(n, partition, key, handler) for n, (partition, key, handler) in enumerate(spec)]
    groups = _by_handler(todo)
    flat = [r for _, rs in groups for r in rs]
    assert sorted(id(r) for r in flat) == sorted(id(r) for r in todo)
    for handler, rs in groups:
        assert rs and all(r.handler is handler for r in rs)
    for (a, _), (b, _) in itertools.pairwise(groups):
        assert a is not b  # a group takes every record of its handler it can
    queue_of = {id(r): (r.record.partition, r.record.key) for r in todo}
    for queue in set(queue_of.values()):
        offsets = [r.record.offset for r in flat if queue_of[id(r)] == queue]
        assert offsets == sorted(offsets)
