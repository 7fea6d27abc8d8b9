"""SQL of the publishing leases after the claim (`PendingPostRepository.claim_publishing`):
one statement renews every lease a worker still holds and says which it has lost."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from hopcast_shared.db import Conn


@dataclass(frozen=True)
class Renewal:
    renewed: frozenset[uuid.UUID]
    """Held, and now until `lease_s` after the statement ran."""
    lost: frozenset[uuid.UUID]
    """Claimed by another worker, or no longer PUBLISHING: never held again under this token.
    The others (neither renewed nor lost) were locked by a transaction at that moment, a
    completion most likely: their lease is left as it was."""


async def renew_leases(conn: Conn, held: Sequence[tuple[uuid.UUID, uuid.UUID]], *, lease_s: float) -> Renewal:
    """Renew the leases (pending post id, lease token) still held, all in one statement.

    A row another transaction has locked is skipped rather than waited for (SKIP LOCKED), so
    a renewal never waits on a claim or a completion, nor deadlocks with one. A lease whose
    time ran out but that nobody claimed is still this worker's (a claim changes the token)
    and is renewed. Lost is read from the same snapshot and only grows: tokens are never reused."""
    if not held:
        return Renewal(frozenset(), frozenset())
    rows = await conn.fetch(
        """
        WITH wanted AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS w(id, token)
        ), still_held AS (
            SELECT p.id FROM pending_posts p JOIN wanted w ON p.id = w.id AND p.lease_token = w.token
            WHERE p.status = 'PUBLISHING'
            FOR UPDATE OF p SKIP LOCKED
        ), renewed AS (
            UPDATE pending_posts p SET lease_until = now() + make_interval(secs => $3)
            FROM still_held WHERE p.id = still_held.id
            RETURNING p.id
        )
        SELECT id, true AS renewed FROM renewed
        UNION ALL
        SELECT w.id, false FROM wanted w
        WHERE NOT EXISTS (
            SELECT 1 FROM pending_posts p WHERE p.id = w.id AND p.lease_token = w.token AND p.status = 'PUBLISHING'
        )
        """,
        [post_id for post_id, _ in held],
        [token for _, token in held],
        lease_s,
    )
    return Renewal(
        frozenset(r["id"] for r in rows if r["renewed"]), frozenset(r["id"] for r in rows if not r["renewed"])
    )
