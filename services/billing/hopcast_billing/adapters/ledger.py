"""The ledger's SQL. Every change of a balance is a ledger row written in the same
transaction, so the balance always equals the sum of the ledger.

`debit_balance` is the one statement that can take credits: a conditional UPDATE whose
WHERE re-checks the balance on the row it locks, so concurrent debits of one organization
serialize on that row and none can take the balance below zero, at any isolation level
(READ COMMITTED re-evaluates the condition on the newest row version; stricter levels
raise a serialization failure, which the consumer retries). CHECK constraints back it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hopcast_shared.db import Conn


@dataclass(frozen=True)
class Balance:
    period: int
    topup: int

    @property
    def total(self) -> int:
        return self.period + self.topup


@dataclass(frozen=True)
class DebitSplit:
    from_period: int
    from_topup: int
    balance_after: Balance
    period_end: datetime | None = None  # of the organization's subscription, read in the same statement


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row of a debit: its action and what it took from each bucket (negative)."""

    action: str
    period_amount: int
    topup_amount: int
    key: str
    balance_after: int


async def ensure_balance_row(conn: Conn, org: uuid.UUID) -> None:
    await conn.execute("INSERT INTO balances (organization_id) VALUES ($1) ON CONFLICT DO NOTHING", org)


async def lock_balance(conn: Conn, org: uuid.UUID) -> Balance:
    """The organization's balance, locked for this transaction (created empty if new)."""
    await ensure_balance_row(conn, org)
    row = await conn.fetchrow(
        "SELECT period_credits, topup_credits FROM balances WHERE organization_id = $1 FOR UPDATE", org
    )
    assert row is not None
    return Balance(row["period_credits"], row["topup_credits"])


async def balance_of(conn: Conn, org: uuid.UUID) -> Balance:
    row = await conn.fetchrow("SELECT period_credits, topup_credits FROM balances WHERE organization_id = $1", org)
    return Balance(0, 0) if row is None else Balance(row["period_credits"], row["topup_credits"])


_DEBIT = """
UPDATE balances SET
    last_from_period = least(period_credits, $2),
    period_credits   = period_credits - least(period_credits, $2),
    topup_credits    = topup_credits - ($2 - least(period_credits, $2)),
    updated_at       = now()
WHERE organization_id = $1 AND period_credits + topup_credits >= $2
RETURNING last_from_period, period_credits, topup_credits,
    (SELECT period_end FROM subscriptions WHERE organization_id = $1) AS period_end
"""


async def debit_balance(conn: Conn, org: uuid.UUID, amount: int) -> DebitSplit | None:
    """Take `amount`, period credits first, then top-ups; None (nothing taken) if not enough."""
    row = await conn.fetchrow(_DEBIT, org, amount)
    if row is None:
        return None
    return DebitSplit(
        from_period=row["last_from_period"],
        from_topup=amount - row["last_from_period"],
        balance_after=Balance(row["period_credits"], row["topup_credits"]),
        period_end=row["period_end"],
    )


async def record_debit(
    conn: Conn,
    *,
    org: uuid.UUID,
    pending_post_id: uuid.UUID,
    run_id: uuid.UUID,
    split: DebitSplit,
    entries: list[LedgerEntry],
) -> None:
    """Mark the pending post's debit DEBITED with its split and append its ledger rows: one statement."""
    await conn.execute(
        """
        WITH decided AS (
            UPDATE debits SET status = 'DEBITED', from_period = $2, from_topup = $3 WHERE pending_post_id = $1
        )
        INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                            balance_after, pending_post_id, run_id)
        SELECT $4, a, p, t, k, b, $1, $5
        FROM unnest($6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[])
            WITH ORDINALITY AS u(a, p, t, k, b, n)
        ORDER BY n
        """,
        pending_post_id,
        split.from_period,
        split.from_topup,
        org,
        run_id,
        [e.action for e in entries],
        [e.period_amount for e in entries],
        [e.topup_amount for e in entries],
        [e.key for e in entries],
        [e.balance_after for e in entries],
    )


async def credit_balance(conn: Conn, org: uuid.UUID, period: int, topup: int) -> Balance:
    """Add credits to the buckets (a negative period amount expires period credits)."""
    await ensure_balance_row(conn, org)
    row = await conn.fetchrow(
        """
        UPDATE balances SET period_credits = period_credits + $2, topup_credits = topup_credits + $3,
            updated_at = now()
        WHERE organization_id = $1
        RETURNING period_credits, topup_credits
        """,
        org,
        period,
        topup,
    )
    assert row is not None
    return Balance(row["period_credits"], row["topup_credits"])


async def append_ledger(
    conn: Conn,
    *,
    org: uuid.UUID,
    action: str,
    period_amount: int,
    topup_amount: int,
    key: str,
    balance_after: int,
    pending_post_id: uuid.UUID | None = None,
    run_id: uuid.UUID | None = None,
    platform: str | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                            balance_after, pending_post_id, run_id, platform)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        org,
        action,
        period_amount,
        topup_amount,
        key,
        balance_after,
        pending_post_id,
        run_id,
        platform,
    )


async def ledger_has(conn: Conn, key: str) -> bool:
    return bool(await conn.fetchval("SELECT true FROM ledger WHERE idempotency_key = $1", key))


async def period_end_of(conn: Conn, org: uuid.UUID) -> datetime | None:
    value: datetime | None = await conn.fetchval("SELECT period_end FROM subscriptions WHERE organization_id = $1", org)
    return value


async def has_subscription(conn: Conn, org: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT true FROM subscriptions WHERE organization_id = $1", org))


async def has_entries(conn: Conn, org: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT true FROM ledger WHERE organization_id = $1 LIMIT 1", org))


async def verify_all(conn: Conn) -> list[asyncpg.Record]:
    """Organizations whose balance differs from the sum of their ledger (or is negative)."""
    return await conn.fetch(
        """
        SELECT b.organization_id, b.period_credits, b.topup_credits,
               coalesce(l.period, 0) AS ledger_period, coalesce(l.topup, 0) AS ledger_topup
        FROM balances b
        FULL JOIN (
            SELECT organization_id, sum(period_amount) AS period, sum(topup_amount) AS topup
            FROM ledger GROUP BY organization_id
        ) l ON l.organization_id = b.organization_id
        WHERE coalesce(b.period_credits, 0) <> coalesce(l.period, 0)
           OR coalesce(b.topup_credits, 0) <> coalesce(l.topup, 0)
           OR b.period_credits < 0 OR b.topup_credits < 0
        """
    )


# --- retention -------------------------------------------------------------------------------


async def purge(conn: Conn, older_than_days: int) -> dict[str, int]:
    """Delete for good everything billing holds of organizations deleted more than `older_than_days`
    ago: ledger, debits, balance, subscription, and the organization itself. Nothing of a live
    organization is ever purged: its ledger is its history (migration 0003 lets the ledger's
    append-only trigger pass only rows of a deleted organization).

    The organizations are locked first, so a restore arriving meanwhile waits and then finds
    the organization gone (it comes back empty) rather than half purged."""
    gone = [
        r["id"]
        for r in await conn.fetch(
            """
            SELECT id FROM organizations WHERE deleted_at < now() - make_interval(days => $1)
            ORDER BY id FOR UPDATE
            """,
            older_than_days,
        )
    ]
    counts: dict[str, int] = {}
    for table in ("ledger", "debits", "balances", "subscriptions"):
        status = await conn.execute(f"DELETE FROM {table} WHERE organization_id = ANY($1::uuid[])", gone)
        counts[table] = int(status.split()[-1])
    status = await conn.execute("DELETE FROM organizations WHERE id = ANY($1::uuid[])", gone)
    counts["organizations"] = int(status.split()[-1])
    return counts
