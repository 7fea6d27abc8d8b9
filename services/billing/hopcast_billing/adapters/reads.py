"""What billing's HTTP routes and CLI read, outside any handler's transaction."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from hopcast_shared.db import Conn


async def subscription_of(conn: Conn, org: uuid.UUID) -> asyncpg.Record | None:
    """The organization's plan and current period, if it has a subscription."""
    return await conn.fetchrow(
        "SELECT plan, period_start, period_end FROM subscriptions WHERE organization_id = $1", org
    )


async def ledger_page(conn: Conn, org: uuid.UUID, *, before: int | None, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the organization's ledger rows, newest first, older than id `before`."""
    rows = await conn.fetch(
        """
        SELECT id, action, amount, period_amount, topup_amount, balance_after, idempotency_key,
               pending_post_id, run_id, platform, subscription_id, description, created_at
        FROM ledger WHERE organization_id = $1 AND ($2::bigint IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        org,
        before,
        limit,
    )
    return [dict(r) for r in rows]


async def ledger_overview(conn: Conn) -> list[dict[str, Any]]:
    """Every organization with a balance or ledger rows: its buckets, their sums in the ledger,
    its current subscription, and its ledger's last row (with its subscription and line)."""
    rows = await conn.fetch(
        """
        WITH sums AS (
            SELECT organization_id, sum(period_amount)::bigint AS period, sum(topup_amount)::bigint AS topup,
                   count(*) AS entries,
                   max(id) AS last_id
            FROM ledger GROUP BY organization_id
        )
        SELECT coalesce(b.organization_id, s.organization_id) AS organization_id,
               coalesce(b.period_credits, 0) AS period_credits, coalesce(b.topup_credits, 0) AS topup_credits,
               coalesce(s.period, 0) AS ledger_period, coalesce(s.topup, 0) AS ledger_topup,
               coalesce(s.entries, 0) AS entries,
               sub.subscription_id, sub.plan,
               last.description AS last_description, last.subscription_id AS last_subscription_id,
               last.created_at AS last_at
        FROM balances b
        FULL JOIN sums s ON s.organization_id = b.organization_id
        LEFT JOIN subscriptions sub ON sub.organization_id = coalesce(b.organization_id, s.organization_id)
        LEFT JOIN ledger last ON last.id = s.last_id
        ORDER BY 1
        """
    )
    return [dict(r) for r in rows]
