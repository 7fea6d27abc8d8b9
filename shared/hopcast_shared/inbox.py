"""The inbox: a consumer records each message it handled in the transaction of the effect,
so a redelivered or replayed message changes nothing.

Entries are scoped by organization: event ids are chosen by producers, so another
organization's event that reuses one of yours is a different message, never a duplicate.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hopcast_shared.db import Conn

HANDLED = "handled"
DEAD_LETTERED = "dead_lettered"
NO_ORGANIZATION = uuid.UUID(int=0)
"""The organization of a message whose organization could not be read."""


async def record_handled(
    conn: Conn,
    *,
    consumer: str,
    organization_id: uuid.UUID,
    message_id: str,
    event_type: str | None,
    outcome: str,
) -> bool:
    """Record the message in the caller's transaction; False when it was recorded before."""
    inserted = await conn.fetchval(
        """
        INSERT INTO inbox (consumer, organization_id, message_id, event_type, outcome) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (consumer, organization_id, message_id) DO NOTHING
        RETURNING true
        """,
        consumer,
        organization_id,
        message_id,
        event_type,
        outcome,
    )
    return bool(inserted)


async def record_many_handled(
    conn: Conn,
    *,
    consumer: str,
    messages: Sequence[tuple[uuid.UUID, str, str | None]],
    outcome: str = HANDLED,
) -> set[tuple[uuid.UUID, str]]:
    """Record a batch of (organization id, message id, event type) in one statement; returns
    the (organization id, message id) not seen before.

    A message that appears twice in the batch is returned once: its first copy is the fresh one.
    """
    rows = await conn.fetch(
        """
        INSERT INTO inbox (consumer, organization_id, message_id, event_type, outcome)
        SELECT $1, o, m, t, $5 FROM unnest($2::uuid[], $3::text[], $4::text[]) AS u(o, m, t)
        ON CONFLICT (consumer, organization_id, message_id) DO NOTHING
        RETURNING organization_id, message_id
        """,
        consumer,
        [o for o, _, _ in messages],
        [m for _, m, _ in messages],
        [t for _, _, t in messages],
        outcome,
    )
    return {(r["organization_id"], r["message_id"]) for r in rows}


async def purge_inbox(conn: Conn, *, older_than_days: int, organizations: Sequence[uuid.UUID] = ()) -> int:
    """Forget handled ids older than the topics' retention (Kafka cannot redeliver them any
    more), and those of `organizations` (purged for good)."""
    status = await conn.execute(
        "DELETE FROM inbox WHERE handled_at < now() - make_interval(days => $1) OR organization_id = ANY($2::uuid[])",
        older_than_days,
        list(organizations),
    )
    return int(status.split()[-1])
