"""SQL of the per-account limits every publisher replica shares (migration 0006): the turns
reserved for an account's calls, one every `min_interval_s`, and the reset before which a
platform refuses the account's calls. One statement per claimed batch reserves the turns of
all its accounts and reads their blocks; a block a platform announced is written with the
deferrals it causes. Both only ever move a time later (greatest), so replicas writing at once
keep the latest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from hopcast_publisher.adapters.platforms.rate_limits import RateLimit
from hopcast_shared.contract import DeferralReason
from hopcast_shared.db import Conn


@dataclass(frozen=True)
class AccountTurns:
    """An account's reserved turns: the first starts `first_turn_in_s` from now; and the block
    holding it, if any."""

    first_turn_in_s: float
    block: RateLimit | None


class AccountLimitRepository:
    async def reserve_turns(
        self, conn: Conn, calls: Mapping[uuid.UUID, int], *, min_interval_s: float
    ) -> dict[uuid.UUID, AccountTurns]:
        """Reserve `calls[account]` turns for each account, after those any replica reserved
        before (atomic per row: the UPDATE of ON CONFLICT locks it), in one statement."""
        if not calls:
            return {}
        ids = sorted(calls)  # one lock order for every replica
        rows = await conn.fetch(
            """
            INSERT INTO account_rate_limits AS l (social_account_id, next_call_at)
            SELECT id, now() + make_interval(secs => n * $3::float8)
            FROM unnest($1::uuid[], $2::int[]) AS c(id, n) ORDER BY id
            ON CONFLICT (social_account_id) DO UPDATE
            SET next_call_at = greatest(l.next_call_at, now()) + (excluded.next_call_at - now()), updated_at = now()
            RETURNING social_account_id, extract(epoch FROM next_call_at - now())::float8 AS reserved_s,
                blocked_until, block_reason
            """,
            ids,
            [calls[i] for i in ids],
            min_interval_s,
        )
        return {
            r["social_account_id"]: AccountTurns(
                max(0.0, r["reserved_s"] - calls[r["social_account_id"]] * min_interval_s),
                _block(r["blocked_until"], r["block_reason"]),
            )
            for r in rows
        }

    async def block(self, conn: Conn, blocks: Mapping[uuid.UUID, RateLimit]) -> None:
        """Record resets platforms announced (each kept only if later than the one stored)."""
        if not blocks:
            return
        ids = sorted(blocks)
        await conn.execute(
            """
            INSERT INTO account_rate_limits AS l (social_account_id, blocked_until, block_reason)
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[])
            ON CONFLICT (social_account_id) DO UPDATE
            SET block_reason = CASE WHEN l.blocked_until IS NULL OR excluded.blocked_until > l.blocked_until
                                    THEN excluded.block_reason ELSE l.block_reason END,
                blocked_until = greatest(l.blocked_until, excluded.blocked_until),
                updated_at = now()
            """,
            ids,
            [blocks[i].reset_at for i in ids],
            [blocks[i].reason.value for i in ids],
        )


def _block(until: datetime | None, reason: str | None) -> RateLimit | None:
    if until is None:
        return None
    return RateLimit(until, DeferralReason(reason or DeferralReason.RATE_LIMITED.value))
