"""The inbox: a consumer records each message it handled in the transaction of the effect,
so a redelivered or replayed message changes nothing."""

from __future__ import annotations

from collections.abc import Sequence

from hopcast_shared.db import Conn

HANDLED = "handled"
DEAD_LETTERED = "dead_lettered"


async def record_handled(
    conn: Conn,
    *,
    consumer: str,
    message_id: str,
    event_type: str | None,
    outcome: str,
    revive_dead_letter: bool = False,
) -> bool:
    """Record the message in the caller's transaction; False when it was recorded before.

    `revive_dead_letter` is for a replay from the DLQ: a message that was dead-lettered
    (and only such a message) may then be handled once more.
    """
    conflict = (
        f"DO UPDATE SET outcome = EXCLUDED.outcome, handled_at = now() WHERE inbox.outcome = '{DEAD_LETTERED}'"
        if revive_dead_letter
        else "DO NOTHING"
    )
    inserted = await conn.fetchval(
        f"""
        INSERT INTO inbox (consumer, message_id, event_type, outcome) VALUES ($1, $2, $3, $4)
        ON CONFLICT (consumer, message_id) {conflict}
        RETURNING true
        """,
        consumer,
        message_id,
        event_type,
        outcome,
    )
    return bool(inserted)


async def record_many_handled(
    conn: Conn, *, consumer: str, messages: Sequence[tuple[str, str | None]], outcome: str = HANDLED
) -> set[str]:
    """Record a batch of (message id, event type) in one statement; returns the ids not seen before.

    A message that appears twice in the batch is returned once: its first copy is the fresh one.
    """
    rows = await conn.fetch(
        """
        INSERT INTO inbox (consumer, message_id, event_type, outcome)
        SELECT $1, m, t, $4 FROM unnest($2::text[], $3::text[]) AS u(m, t)
        ON CONFLICT (consumer, message_id) DO NOTHING
        RETURNING message_id
        """,
        consumer,
        [m for m, _ in messages],
        [t for _, t in messages],
        outcome,
    )
    return {r["message_id"] for r in rows}


async def purge_inbox(conn: Conn, *, older_than_days: int) -> int:
    """Forget handled ids older than the topics' retention: Kafka cannot redeliver them any more."""
    status = await conn.execute(
        "DELETE FROM inbox WHERE handled_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(status.split()[-1])
