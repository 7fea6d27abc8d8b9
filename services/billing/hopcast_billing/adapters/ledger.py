"""The ledger's SQL. Every change of a balance is a ledger row written in the same
transaction, so the balance always equals the sum of the ledger.

Debits, for one pending post or a batch of them, are a few statements whatever their
number: `claim_debits` (one decision per pending post), `lock_balances` (the rows, in id
order so concurrent batches cannot deadlock), the decision in Python (domain/debits.py),
then `take_credits`, the one statement that takes credits: a conditional UPDATE whose WHERE
re-checks each bucket on the row it changes, so no balance can go below zero at any
isolation level (stricter levels raise a serialization failure, which the consumer
retries), and `record_debits` (statuses and ledger rows). CHECK constraints back it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hopcast_billing.domain.debits import Balance, Part
from hopcast_shared.db import Conn


@dataclass(frozen=True)
class DebitRow:
    """A decided debit: the pending post, what it took from each bucket, and its ledger rows."""

    pending_post_id: uuid.UUID
    organization_id: uuid.UUID
    run_id: uuid.UUID
    from_period: int
    from_topup: int
    parts: tuple[Part, ...]


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


async def claim_debits(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> dict[tuple[uuid.UUID, uuid.UUID], bool]:
    """Claim the decision for each pending post (pending_post_id, organization_id, run_id,
    schedule_id, brand_profile_id, due_at, platforms, generate, publish): the ones its
    organization had not decided before, by (organization_id, pending_post_id), each with
    whether its organization is deleted. One statement.

    A pending post is its organization's: another organization's post with the same id is
    another debit, never a duplicate of it."""
    columns = list(zip(*rows, strict=True))
    claimed = await conn.fetch(
        """
        INSERT INTO debits (pending_post_id, organization_id, run_id, schedule_id, brand_profile_id, due_at,
                            platforms, status, generate_amount, publish_amount)
        SELECT p, o, r, s, b, d, string_to_array(pl, ','), 'DECIDING', g, pu
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[], $7::text[],
                    $8::int[], $9::int[]) AS u(p, o, r, s, b, d, pl, g, pu)
        ON CONFLICT (organization_id, pending_post_id) DO NOTHING
        RETURNING organization_id, pending_post_id,
            (SELECT deleted_at IS NOT NULL FROM organizations WHERE id = organization_id) AS organization_deleted
        """,
        *(list(c) for c in columns[:6]),
        [",".join(platforms) for platforms in columns[6]],
        list(columns[7]),
        list(columns[8]),
    )
    return {(r["organization_id"], r["pending_post_id"]): bool(r["organization_deleted"]) for r in claimed}


async def locked_debit(conn: Conn, org: uuid.UUID, pending_post_id: uuid.UUID) -> asyncpg.Record | None:
    """The organization's debit for this pending post, locked for this transaction."""
    return await conn.fetchrow(
        "SELECT * FROM debits WHERE organization_id = $1 AND pending_post_id = $2 FOR UPDATE", org, pending_post_id
    )


async def debit_of_run(conn: Conn, org: uuid.UUID, run_id: uuid.UUID) -> uuid.UUID | None:
    """The pending post the organization's debit for this run is for."""
    pending_post_id: uuid.UUID | None = await conn.fetchval(
        "SELECT pending_post_id FROM debits WHERE organization_id = $1 AND run_id = $2", org, run_id
    )
    return pending_post_id


async def debited_elsewhere(
    conn: Conn, org: uuid.UUID, *, pending_post_id: uuid.UUID | None = None, run_id: uuid.UUID | None = None
) -> bool:
    """Whether another organization than `org` has a debit for this pending post or run."""
    return bool(
        await conn.fetchval(
            """
            SELECT true FROM debits
            WHERE organization_id <> $1 AND (pending_post_id = $2 OR run_id = $3) LIMIT 1
            """,
            org,
            pending_post_id,
            run_id,
        )
    )


async def lock_balances(conn: Conn, orgs: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[Balance, datetime | None]]:
    """The balances (and subscription period ends) of these organizations, locked in id order."""
    rows = await conn.fetch(
        """
        SELECT b.organization_id, b.period_credits, b.topup_credits, s.period_end
        FROM balances b LEFT JOIN subscriptions s USING (organization_id)
        WHERE b.organization_id = ANY($1::uuid[])
        ORDER BY b.organization_id
        FOR UPDATE OF b
        """,
        sorted(orgs),
    )
    return {r["organization_id"]: (Balance(r["period_credits"], r["topup_credits"]), r["period_end"]) for r in rows}


async def take_credits(conn: Conn, taken: Mapping[uuid.UUID, tuple[int, int]]) -> None:
    """Take (from period, from top-up) of each organization's balance: one conditional UPDATE
    whose WHERE re-checks each bucket on the row it changes, so it can never go below zero
    (at any isolation level); raises, taking nothing, if a balance no longer covers it."""
    if not taken:
        return
    orgs = sorted(taken)
    changed = await conn.fetch(
        """
        UPDATE balances b SET period_credits = b.period_credits - u.p, topup_credits = b.topup_credits - u.t,
            updated_at = now()
        FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS u(org, p, t)
        WHERE b.organization_id = u.org AND b.period_credits >= u.p AND b.topup_credits >= u.t
        RETURNING b.organization_id
        """,
        orgs,
        [taken[o][0] for o in orgs],
        [taken[o][1] for o in orgs],
    )
    if len(changed) != len(orgs):
        raise RuntimeError("a balance changed under its lock; nothing was taken")


async def record_debits(conn: Conn, debits: Sequence[DebitRow]) -> None:
    """Mark the debits DEBITED with their split and append their ledger rows: one statement."""
    if not debits:
        return
    parts = [(d, part) for d in debits for part in d.parts]
    await conn.execute(
        """
        WITH decided AS (
            UPDATE debits SET status = 'DEBITED', from_period = d.p, from_topup = d.t
            FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $11::uuid[]) AS d(id, p, t, o)
            WHERE organization_id = d.o AND pending_post_id = d.id
        )
        INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                            balance_after, pending_post_id, run_id)
        SELECT o, a, -p, -t, 'debit:' || pp || ':' || a, b, pp, r
        FROM unnest($4::uuid[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::uuid[], $10::uuid[])
            WITH ORDINALITY AS u(o, a, p, t, b, pp, r, n)
        ORDER BY n
        """,
        [d.pending_post_id for d in debits],
        [d.from_period for d in debits],
        [d.from_topup for d in debits],
        [d.organization_id for d, _ in parts],
        [part.action.value for _, part in parts],
        [part.from_period for _, part in parts],
        [part.from_topup for _, part in parts],
        [part.balance_after for _, part in parts],
        [d.pending_post_id for d, _ in parts],
        [d.run_id for d, _ in parts],
        [d.organization_id for d in debits],
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


async def ledger_has(conn: Conn, org: uuid.UUID, key: str) -> bool:
    """Whether the organization's ledger has a row with this idempotency key (the keys are
    each organization's own: another's grant_id or subscription_id is not ours)."""
    return bool(
        await conn.fetchval("SELECT true FROM ledger WHERE organization_id = $1 AND idempotency_key = $2", org, key)
    )


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
