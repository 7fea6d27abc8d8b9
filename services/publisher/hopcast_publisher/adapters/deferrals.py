"""SQL of deferrals on rate limits (migration 0006): a pending post put off keeps PUBLISHING
with its lease pushed to its earliest retry_at, only while this worker still holds it; its
attempts put off get their retry_at, the others of its round their settled result."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hopcast_shared.db import Conn


class DeferralRepository:
    async def defer_publishing(
        self, conn: Conn, retry_at: Mapping[uuid.UUID, datetime], *, lease_token: uuid.UUID
    ) -> set[uuid.UUID]:
        """Push the lease of PUBLISHING pending posts held under `lease_token` to their retry_at
        (claimable again then, by any worker). Returns those held."""
        if not retry_at:
            return set()
        ids = list(retry_at)
        rows = await conn.fetch(
            """
            UPDATE pending_posts p SET lease_until = d.retry_at, updated_at = now()
            FROM unnest($1::uuid[], $2::timestamptz[]) AS d(id, retry_at)
            WHERE p.id = d.id AND p.status = 'PUBLISHING' AND p.lease_token = $3
            RETURNING p.id
            """,
            ids,
            [retry_at[i] for i in ids],
            lease_token,
        )
        return {r["id"] for r in rows}

    async def record_deferrals(
        self,
        conn: Conn,
        waiting: Sequence[tuple[uuid.UUID, str, datetime, str, bool]],
        settled: Sequence[tuple[Any, ...]],
    ) -> None:
        """`waiting`: (pending_post_id, platform, retry_at, reason, maybe_sent) of attempts put
        off (one whose calls surely created nothing goes back to QUEUED, so that its retry posts
        without asking the platform first: `adapters/leases.py`);
        `settled`: (pending_post_id, platform, status, failure_reason, failure_detail,
        external_id, external_url, published_at) of attempts that ended meanwhile."""
        if waiting:
            await conn.execute(
                """
                UPDATE publish_attempts a
                SET retry_at = w.retry_at, deferral_reason = w.reason, deferrals = a.deferrals + 1,
                    status = CASE WHEN a.status = 'SENT' AND NOT w.maybe_sent THEN 'QUEUED' ELSE a.status END
                FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::bool[])
                     AS w(id, platform, retry_at, reason, maybe_sent)
                WHERE a.pending_post_id = w.id AND a.platform = w.platform
                """,
                *([row[i] for row in waiting] for i in range(5)),
            )
        if settled:
            await conn.execute(
                """
                UPDATE publish_attempts a
                SET status = s.status, failure_reason = s.reason, failure_detail = s.detail,
                    external_id = s.external_id, external_url = s.external_url, published_at = s.published_at,
                    retry_at = NULL, deferral_reason = NULL, settled_at = now()
                FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                            $8::timestamptz[])
                     AS s(id, platform, status, reason, detail, external_id, external_url, published_at)
                WHERE a.pending_post_id = s.id AND a.platform = s.platform
                """,
                *([row[i] for row in settled] for i in range(8)),
            )
