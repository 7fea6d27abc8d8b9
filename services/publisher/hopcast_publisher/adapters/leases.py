"""SQL of the publishing leases after the claim (`PendingPostRepository.claim_publishing`):
one statement renews every lease a worker still holds and says which it has lost; and what
an attempt's status says about calls sent for it, so that a post claimed again is looked up
on the platform only when a call may have been sent.

Attempt statuses while publishing: QUEUED (written when publishing starts, or at the first
claim of a post a version before these statuses started: no call has been sent), SENT (a
create call is about to be sent, recorded before it is), PENDING (what a version before these
statuses left on a post it had claimed). A post
claimed again with an attempt QUEUED was never called for on that platform: no lookup is
needed, and none is made (a personal LinkedIn account cannot make one). PENDING or SENT
means a call may have been sent: ask first."""

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
    and is renewed. A renewal never brings a lease closer: one pushed to a deferral's retry_at
    (or a failed completion's retry) stays there. Lost is read from the same snapshot and only
    grows: tokens are never reused."""
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
            UPDATE pending_posts p SET lease_until = GREATEST(p.lease_until, now() + make_interval(secs => $3))
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


QUEUED, SENT = "QUEUED", "SENT"


async def queue_first_claims(conn: Conn, pending_post_ids: Sequence[uuid.UUID]) -> None:
    """The PENDING attempts of pending posts claimed for the first time become QUEUED: nothing
    can have been sent for them. Only posts a version before these statuses started have any
    (attempts are written QUEUED now), so in the steady state this writes nothing. (A later
    claim changes nothing, so PENDING keeps meaning "may have been sent" for posts a version
    before this one claimed.)"""
    if pending_post_ids:
        await conn.execute(
            "UPDATE publish_attempts SET status = 'QUEUED'"
            " WHERE pending_post_id = ANY($1::uuid[]) AND status = 'PENDING'",
            list(pending_post_ids),
        )


class RunDeadlinePassedError(Exception):
    """The run's deadline passed before the call was recorded: it is not sent."""


async def record_sending(conn: Conn, pending_post_id: uuid.UUID, platform: str) -> None:
    """A create call for this attempt is about to be sent: whoever claims its post later asks
    the platform first. Written before the call, so it is never missing after one.

    Refused (RunDeadlinePassedError) once the run is past its deadline: the post's row is
    read under a share lock, so a RunDeadlinePassed handled at the same moment either comes
    first (no call) or waits for this record (the call counts as started, and is finished)."""
    passed = await conn.fetchval(
        "SELECT deadline_passed_at IS NOT NULL FROM pending_posts WHERE id = $1 FOR SHARE", pending_post_id
    )
    if passed:
        raise RunDeadlinePassedError(f"pending post {pending_post_id}: the run's deadline passed")
    await conn.execute(
        "UPDATE publish_attempts SET status = 'SENT' WHERE pending_post_id = $1 AND platform = $2"
        " AND status IN ('PENDING', 'QUEUED')",
        pending_post_id,
        platform,
    )
