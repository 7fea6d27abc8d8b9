"""One way for a service to say what it handles: a dispatch map from event type to a handler.

A handler is a plain async function of the service layer, `handler(deps, ctx, data)`: the
service's dependencies (a frozen dataclass of adapters and settings, built in `bootstrap.py`),
the event's context (its transaction's connection, its envelope, `ctx.emit`) and its data. One
that can take its type's events of a transaction at once with set-based SQL is marked `batched` and
is called as `handler(deps, [(ctx, data), ...])`.

The map is module-level data, so the service's interface (and its AsyncAPI document) is derived
from it without building anything; `bind` gives the consumer the handlers with their
dependencies.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hopcast_shared.handling import BatchedHandler, EventContext, Handler

D = TypeVar("D")

HandlerFn = Callable[[Any, EventContext, Any], Awaitable[None]]
ManyFn = Callable[[Any, Sequence[tuple[EventContext, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class Batched(Generic[D]):
    """A handler that takes a batch of its type's events: `many(deps, [(ctx, data), ...])`."""

    many: ManyFn

    @property
    def __name__(self) -> str:
        return getattr(self.many, "__name__", "batched")


def batched(many: ManyFn) -> Batched[Any]:
    """Mark a service-layer function as taking its type's events in batches."""
    return Batched(many)


Dispatch = Mapping[str, HandlerFn | Batched[Any]]


def bind(dispatch: Dispatch, deps: object) -> dict[str, Handler]:
    """The consumer's handlers: each function of the map given `deps`. Types mapped to the same
    function share one bound handler, so the consumer groups their events as one run."""
    bound: dict[int, Handler] = {}
    handlers: dict[str, Handler] = {}
    for event_type, fn in dispatch.items():
        handler = bound.get(id(fn))
        if handler is None:
            if isinstance(fn, Batched):
                handler = BatchedHandler(functools.partial(fn.many, deps))
                handler.__name__ = fn.__name__
            else:
                handler = functools.partial(fn, deps)
            bound[id(fn)] = handler
        handlers[event_type] = handler
    return handlers
