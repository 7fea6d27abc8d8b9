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
               pending_post_id, run_id, platform, created_at
        FROM ledger WHERE organization_id = $1 AND ($2::bigint IS NULL OR id < $2)
        ORDER BY id DESC LIMIT $3
        """,
        org,
        before,
        limit,
    )
    return [dict(r) for r in rows]


async def organizations_with_balance(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM balances"))
