"""What a service's handlers get and are: the event's context (its transaction's connection,
its envelope, a way to emit events), the handler types, and the error that refuses an event
for good. The consumer (`consumer.py`) calls them; the service layers write them.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.trace import Span
from pydantic import BaseModel, ValidationError

from hopcast_shared.contract import Envelope
from hopcast_shared.db import Conn
from hopcast_shared.outbox import OutboxRow, event_rows
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import inject_headers


class PermanentError(Exception):
    """The event breaks a rule it always will (another tenant's id, an impossible state):
    dead-letter it now, retrying cannot help. `kind` is the dead letter's `error_kind`:
    `rejected` unless a rule has a name of its own (`token_not_for_account`)."""

    def __init__(self, message: str, *, kind: str = "rejected") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class EventContext:
    """What a handler gets: the transaction's connection, the event, and a way to emit events.

    Emitted events are written to the outbox by the consumer when the handler returns, in the
    same transaction (for a batch, all of its events in one statement).
    """

    conn: Conn
    envelope: Envelope
    service: str
    kafka: KafkaSettings
    outbox: list[OutboxRow] = field(default_factory=list)
    span: Span | None = None  # the event's span, when it is handled in a batch outside it
    _trace: list[tuple[str, str]] | None = None

    async def emit(
        self,
        data: BaseModel,
        *,
        organization_id: Any = None,
        correlation_id: str | None = None,
        topics: Sequence[str] | None = None,
    ) -> None:
        """Emit an event in this transaction; it is caused by the event being handled and
        carries its trace (the trace context is read once per handled event)."""
        if self._trace is None:
            with contextlib.nullcontext() if self.span is None else trace.use_span(self.span):
                self._trace = inject_headers()
        org = organization_id or self.envelope.organizationid
        self.outbox += event_rows(
            self.kafka,
            [data],
            organization_id=org if isinstance(org, uuid.UUID) else uuid.UUID(str(org)),
            source=f"hopcast/{self.service}",
            correlation_id=correlation_id or self.envelope.correlationid,
            causation_id=str(self.envelope.id),
            trace=self._trace,
            topics=topics,
        )


Handler = Callable[[EventContext, Any], Awaitable[None]]
ManyHandler = Callable[[Sequence[tuple[EventContext, Any]]], Awaitable[None]]


class BatchedHandler:
    """A handler that can take its type's events of a transaction at once, in the batch's
    transaction, with set-based SQL (one statement for all instead of one each); called
    with a single event otherwise. Each event has its own context: its emitted events are
    caused by it and carry its trace."""

    def __init__(self, many: ManyHandler) -> None:
        self.many = many
        self.__name__ = getattr(many, "__name__", "batched")

    async def __call__(self, ctx: EventContext, data: Any) -> None:
        await self.many([(ctx, data)])


# Failures that are the event's for good: dead-lettered at once. Failures of the infrastructure
# (`db.is_infrastructure_error`) are retried without end; any other is retried, then dead-lettered.
_PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentError,
    ValidationError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


def is_permanent(exc: BaseException) -> bool:
    """Whether a handler's failure is the event's for good: dead-letter it at once."""
    # A unique violation is a race with a concurrent transaction: a retry sees its row.
    if isinstance(exc, asyncpg.UniqueViolationError):
        return False
    # asyncpg's own "invalid input for query argument" (an int beyond bigint, a NUL in text) is
    # an InterfaceError as well as a ValueError: it is the event's data, never the connection.
    return isinstance(exc, _PERMANENT_ERRORS) or (
        isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)
    )
