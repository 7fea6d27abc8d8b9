"""SQL of approval deadlines: `claim_expired_drafts` ends manual-mode drafts nobody decided in
time, each by exactly one replica (FOR UPDATE SKIP LOCKED, and the status checked again on the
locked row), in the transaction that writes their events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from hopcast_shared.db import Conn


@dataclass(frozen=True)
class ExpiredDraft:
    id: UUID
    organization_id: UUID
    run_id: UUID
    schedule_id: UUID
    brand_profile_id: UUID
    due_at: datetime
    approval_deadline: datetime
    cause_event_id: UUID | None


async def claim_expired_drafts(conn: Conn, *, limit: int) -> list[ExpiredDraft]:
    """End EXPIRED up to `limit` drafts past their deadline that are still waiting for a
    decision and only for it: the post and its successful debit are here (a draft whose debit
    is unknown waits for it, as a rejection does: a rejected debit already ended the run) and
    no approval or rejection took effect. Rows another transaction holds are skipped; they are
    looked at again on the next round, when they may no longer be WAITING."""
    rows = await conn.fetch(
        """
        UPDATE pending_posts p
        SET status = 'EXPIRED', completed_at = now(), updated_at = now()
        FROM (
            SELECT id FROM pending_posts
            WHERE status = 'WAITING' AND approval_deadline IS NOT NULL AND approval_deadline <= now()
              AND has_post AND requires_approval AND debit = 'DEBITED' AND approval IS NULL
            ORDER BY approval_deadline LIMIT $1
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE p.id = due.id AND p.status = 'WAITING'
        RETURNING p.id, p.organization_id, p.run_id, p.schedule_id, p.brand_profile_id, p.due_at,
                  p.approval_deadline, p.cause_event_id
        """,
        limit,
    )
    return [ExpiredDraft(**dict(r)) for r in rows]
