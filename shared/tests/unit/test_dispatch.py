"""A service's dispatch map, bound to its dependencies, is what the consumer runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hopcast_shared.dispatch import batched, bind
from hopcast_shared.handling import BatchedHandler, EventContext


async def test_bound_handlers_get_the_dependencies_and_batched_ones_a_batch() -> None:
    seen: list[tuple[str, Any, Any]] = []

    async def one(deps: str, ctx: EventContext, data: int) -> None:
        seen.append((deps, ctx, data))

    async def many(deps: str, items: Sequence[tuple[EventContext, int]]) -> None:
        seen.extend((deps, ctx, data) for ctx, data in items)

    ctx: Any = object()
    handlers = bind({"A": one, "B": one, "C": batched(many)}, "deps")

    assert handlers["A"] is handlers["B"]  # one function, one handler: their events batch together
    assert isinstance(handlers["C"], BatchedHandler) and not isinstance(handlers["A"], BatchedHandler)
    await handlers["A"](ctx, 1)
    await handlers["C"](ctx, 2)
    await handlers["C"].many([(ctx, 3), (ctx, 4)])
    assert seen == [("deps", ctx, 1), ("deps", ctx, 2), ("deps", ctx, 3), ("deps", ctx, 4)]
