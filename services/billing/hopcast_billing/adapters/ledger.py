"""The ledger's SQL. Every change of a balance is a ledger row written in the same
transaction, so the balance always equals the sum of the ledger.

Debits, for one pending post or a batch of them, are a few statements whatever their
number: `claim_debits` (one decision per pending post), `lock_balances` (the rows, in id
order so concurrent batches cannot deadlock), the decision in Python (domain/debits.py),
then `take_credits`, the one statement that takes credits: a conditional UPDATE whose WHERE
re-checks each bucket on the row it changes, so no balance can go below zero at any
isolation level (stricter levels raise a serialization failure, which the consumer
retries), and `record_debits` (statuses and ledger rows). CHECK constraints back it.

`Ledger` is what the service layer uses, bound to the consumer's transaction; unit tests
subclass it with an in-memory fake. `verify_all` and `purge` are the operators' tools.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from hopcast_billing.domain import descriptions
from hopcast_billing.domain.debits import Balance, Part
from hopcast_billing.domain.refunds import Debit
from hopcast_shared.db import Conn


@dataclass(frozen=True)
class DebitClaim:
    """A pending post to decide, with its price: what `claim_debits` records first."""

    pending_post_id: uuid.UUID
    organization_id: uuid.UUID
    run_id: uuid.UUID
    schedule_id: uuid.UUID
    brand_profile_id: uuid.UUID
    due_at: datetime | None
    platforms: list[str]
    generate: int
    publish: int


@dataclass(frozen=True)
class DebitRow:
    """A decided debit: the pending post, what it took from each bucket, and its ledger rows."""

    pending_post_id: uuid.UUID
    organization_id: uuid.UUID
    run_id: uuid.UUID
    from_period: int
    from_topup: int
    parts: tuple[Part, ...]
    platforms: tuple[str, ...] = ()


async def balance_of(conn: Conn, org: uuid.UUID) -> Balance:
    row = await conn.fetchrow("SELECT period_credits, topup_credits FROM balances WHERE organization_id = $1", org)
    return Balance(0, 0) if row is None else Balance(row["period_credits"], row["topup_credits"])


class Ledger:
    """Billing's state in one transaction: balances, the ledger, debits and subscriptions."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    # --- balances and the ledger ---------------------------------------------------------

    async def ensure_balance_row(self, org: uuid.UUID) -> None:
        await self.conn.execute("INSERT INTO balances (organization_id) VALUES ($1) ON CONFLICT DO NOTHING", org)

    async def lock_balance(self, org: uuid.UUID) -> Balance:
        """The organization's balance, locked for this transaction (created empty if new)."""
        await self.ensure_balance_row(org)
        row = await self.conn.fetchrow(
            "SELECT period_credits, topup_credits FROM balances WHERE organization_id = $1 FOR UPDATE", org
        )
        assert row is not None
        return Balance(row["period_credits"], row["topup_credits"])

    async def balance_of(self, org: uuid.UUID) -> Balance:
        return await balance_of(self.conn, org)

    async def lock_balances(self, orgs: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[Balance, datetime | None]]:
        """The balances (and subscription period ends) of these organizations, locked in id order."""
        rows = await self.conn.fetch(
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

    async def take_credits(self, taken: Mapping[uuid.UUID, tuple[int, int]]) -> None:
        """Take (from period, from top-up) of each organization's balance: one conditional UPDATE
        whose WHERE re-checks each bucket on the row it changes, so it can never go below zero
        (at any isolation level); raises, taking nothing, if a balance no longer covers it."""
        if not taken:
            return
        orgs = sorted(taken)
        changed = await self.conn.fetch(
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

    async def credit_balance(self, org: uuid.UUID, period: int, topup: int) -> Balance:
        """Add credits to the buckets (a negative period amount expires period credits)."""
        await self.ensure_balance_row(org)
        row = await self.conn.fetchrow(
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
        self,
        *,
        org: uuid.UUID,
        action: str,
        period_amount: int,
        topup_amount: int,
        key: str,
        balance_after: int,
        description: str,
        pending_post_id: uuid.UUID | None = None,
        run_id: uuid.UUID | None = None,
        platform: str | None = None,
    ) -> None:
        """One row. Its subscription is the one whose period bucket it changes: the organization's
        current subscription when the row moves period credits, none when it moves top-ups only."""
        await self.conn.execute(
            """
            INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                                balance_after, pending_post_id, run_id, platform, description, subscription_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                    CASE WHEN $3::bigint <> 0
                         THEN (SELECT subscription_id FROM subscriptions WHERE organization_id = $1) END)
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
            description,
        )

    async def ledger_has(self, org: uuid.UUID, key: str) -> bool:
        """Whether the organization's ledger has a row with this idempotency key (the keys are
        each organization's own: another's grant_id or subscription_id is not ours)."""
        return bool(
            await self.conn.fetchval(
                "SELECT true FROM ledger WHERE organization_id = $1 AND idempotency_key = $2", org, key
            )
        )

    async def plan_of(self, org: uuid.UUID) -> str | None:
        """The plan of the organization's current subscription, if it has one."""
        plan: str | None = await self.conn.fetchval("SELECT plan FROM subscriptions WHERE organization_id = $1", org)
        return plan

    async def has_entries(self, org: uuid.UUID) -> bool:
        return bool(await self.conn.fetchval("SELECT true FROM ledger WHERE organization_id = $1 LIMIT 1", org))

    # --- debits ------------------------------------------------------------------------------

    async def claim_debits(self, claims: Sequence[DebitClaim]) -> dict[tuple[uuid.UUID, uuid.UUID], bool]:
        """Claim the decision for each pending post: the ones its organization had not decided
        before, by (organization_id, pending_post_id), each with whether its organization is
        deleted. One statement.

        A pending post is its organization's: another organization's post with the same id is
        another debit, never a duplicate of it."""
        claimed = await self.conn.fetch(
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
            [c.pending_post_id for c in claims],
            [c.organization_id for c in claims],
            [c.run_id for c in claims],
            [c.schedule_id for c in claims],
            [c.brand_profile_id for c in claims],
            [c.due_at for c in claims],
            [",".join(c.platforms) for c in claims],
            [c.generate for c in claims],
            [c.publish for c in claims],
        )
        return {(r["organization_id"], r["pending_post_id"]): bool(r["organization_deleted"]) for r in claimed}

    async def record_debits(self, debits: Sequence[DebitRow]) -> None:
        """Mark the debits DEBITED with their split and append their ledger rows: one statement."""
        if not debits:
            return
        parts = [(d, part) for d in debits for part in d.parts]
        # Each row's subscription as append_ledger says: the current one when it takes period credits.
        await self.conn.execute(
            """
            WITH decided AS (
                UPDATE debits SET status = 'DEBITED', from_period = d.p, from_topup = d.t
                FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $11::uuid[]) AS d(id, p, t, o)
                WHERE organization_id = d.o AND pending_post_id = d.id
            )
            INSERT INTO ledger (organization_id, action, period_amount, topup_amount, idempotency_key,
                                balance_after, pending_post_id, run_id, description, subscription_id)
            SELECT o, a, -p, -t, 'debit:' || pp || ':' || a, b, pp, r, txt,
                   CASE WHEN p <> 0 THEN (SELECT s.subscription_id FROM subscriptions s WHERE s.organization_id = o) END
            FROM unnest($4::uuid[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::uuid[], $10::uuid[],
                        $12::text[])
                WITH ORDINALITY AS u(o, a, p, t, b, pp, r, txt, n)
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
            [descriptions.debit(part.action, d.platforms) for d, part in parts],
        )

    async def record_run_deadline(self, org: uuid.UUID, run_id: uuid.UUID) -> None:
        """The run is past its deadline: a pending post of it not debited yet never is."""
        await self.conn.execute(
            "INSERT INTO run_deadlines (organization_id, run_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", org, run_id
        )

    async def runs_past_deadline(self, runs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Of these (organization id, run id), those past their deadline."""
        if not runs:
            return set()
        rows = await self.conn.fetch(
            """
            SELECT d.organization_id, d.run_id FROM run_deadlines d
            JOIN unnest($1::uuid[], $2::uuid[]) AS k(o, r) ON d.organization_id = k.o AND d.run_id = k.r
            """,
            [o for o, _ in runs],
            [r for _, r in runs],
        )
        return {(r["organization_id"], r["run_id"]) for r in rows}

    async def mark_debit_rejected(self, org: uuid.UUID, pending_post_id: uuid.UUID) -> None:
        """The claimed debit took nothing: its run ends here."""
        await self.conn.execute(
            "UPDATE debits SET status = 'REJECTED' WHERE organization_id = $1 AND pending_post_id = $2",
            org,
            pending_post_id,
        )

    async def locked_debit(self, org: uuid.UUID, pending_post_id: uuid.UUID) -> Debit | None:
        """The organization's debit for this pending post, locked for this transaction."""
        row = await self.conn.fetchrow(
            "SELECT * FROM debits WHERE organization_id = $1 AND pending_post_id = $2 FOR UPDATE", org, pending_post_id
        )
        return None if row is None else _debit(row)

    async def debit_of_run(self, org: uuid.UUID, run_id: uuid.UUID) -> uuid.UUID | None:
        """The pending post the organization's debit for this run is for."""
        pending_post_id: uuid.UUID | None = await self.conn.fetchval(
            "SELECT pending_post_id FROM debits WHERE organization_id = $1 AND run_id = $2", org, run_id
        )
        return pending_post_id

    async def debited_elsewhere(
        self, org: uuid.UUID, *, pending_post_id: uuid.UUID | None = None, run_id: uuid.UUID | None = None
    ) -> bool:
        """Whether another organization than `org` has a debit for this pending post or run."""
        return bool(
            await self.conn.fetchval(
                """
                SELECT true FROM debits
                WHERE organization_id <> $1 AND (pending_post_id = $2 OR run_id = $3) LIMIT 1
                """,
                org,
                pending_post_id,
                run_id,
            )
        )

    async def record_failed_platforms(self, debit: Debit, failed: Sequence[str]) -> None:
        """The platforms of the debit's post that failed so far: each is refunded once."""
        await self.conn.execute(
            "UPDATE debits SET failed_platforms = $3 WHERE organization_id = $1 AND pending_post_id = $2",
            debit.organization_id,
            debit.pending_post_id,
            list(failed),
        )

    async def mark_rejection_refunded(self, debit: Debit) -> None:
        """The debit is given back whole, once: a second rejection finds rejected_at set."""
        await self.conn.execute(
            "UPDATE debits SET rejected_at = now() WHERE organization_id = $1 AND pending_post_id = $2",
            debit.organization_id,
            debit.pending_post_id,
        )

    async def record_refund(self, debit: Debit, to_period: int, to_topup: int) -> None:
        """What the debit gave back to each bucket so far: never more than it took."""
        await self.conn.execute(
            """
            UPDATE debits SET refunded_period = refunded_period + $3, refunded_topup = refunded_topup + $4
            WHERE organization_id = $1 AND pending_post_id = $2
            """,
            debit.organization_id,
            debit.pending_post_id,
            to_period,
            to_topup,
        )

    # --- subscriptions -----------------------------------------------------------------------

    async def period_start_of(self, org: uuid.UUID) -> datetime | None:
        value: datetime | None = await self.conn.fetchval(
            "SELECT period_start FROM subscriptions WHERE organization_id = $1", org
        )
        return value

    async def period_end_of(self, org: uuid.UUID) -> datetime | None:
        value: datetime | None = await self.conn.fetchval(
            "SELECT period_end FROM subscriptions WHERE organization_id = $1", org
        )
        return value

    async def has_subscription(self, org: uuid.UUID) -> bool:
        return bool(await self.conn.fetchval("SELECT true FROM subscriptions WHERE organization_id = $1", org))

    async def start_period(
        self,
        org: uuid.UUID,
        subscription_id: uuid.UUID,
        plan: str,
        credits_total: int,
        period_start: datetime,
        period_end: datetime,
    ) -> None:
        """The organization's one subscription is now this one, in this period."""
        await self.conn.execute(
            """
            INSERT INTO subscriptions (organization_id, subscription_id, plan, credits_total, period_start, period_end)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (organization_id) DO UPDATE SET subscription_id = EXCLUDED.subscription_id,
                plan = EXCLUDED.plan, credits_total = EXCLUDED.credits_total,
                period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, updated_at = now()
            """,
            org,
            subscription_id,
            plan,
            credits_total,
            period_start,
            period_end,
        )


_DEBIT_COLUMNS = tuple(f.name for f in fields(Debit))


def _debit(row: asyncpg.Record) -> Debit:
    """The debits row as the domain's Debit (its text[] columns as tuples)."""
    values: dict[str, Any] = {name: row[name] for name in _DEBIT_COLUMNS}
    return Debit(**values | {"platforms": tuple(row["platforms"]), "failed_platforms": tuple(row["failed_platforms"])})


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
    ago: ledger, debits, balance, subscription, and the organization itself (and runs past their
    deadline, of any organization, older than that). Nothing of a live
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
    # Runs past their deadline are no money history: kept as long as a late draft may come.
    status = await conn.execute(
        "DELETE FROM run_deadlines WHERE organization_id = ANY($1::uuid[])"
        " OR passed_at < now() - make_interval(days => $2)",
        gone,
        older_than_days,
    )
    counts["run_deadlines"] = int(status.split()[-1])
    status = await conn.execute("DELETE FROM organizations WHERE id = ANY($1::uuid[])", gone)
    counts["organizations"] = int(status.split()[-1])
    return counts
