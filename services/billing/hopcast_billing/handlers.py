"""Billing's service layer: debits, refunds, grants and subscription periods, each in the
consumer's transaction together with its ledger rows and outbox events.

Idempotency: the inbox stops a redelivered event; beyond it, a debit is decided once per
pending post (the debits row), a grant once per grant_id and a period once per
subscription and start (the ledger's unique idempotency keys), a refund once per platform
(the debit's failed_platforms) and a rejection refund once (rejected_at). Every one of these
keys is the organization's own: another organization's event naming the same grant_id,
subscription_id or pending_post_id is its own grant, period or debit, never a duplicate.
A refund naming a pending post or run that only another organization has is refused.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from hopcast_billing import metrics
from hopcast_billing.adapters import ledger
from hopcast_billing.domain.debits import Balance, DebitRequest, Refused, Taken, decide
from hopcast_billing.domain.pricing import PostPrice, Prices, price_of_post, publish_refund_due
from hopcast_shared import projections
from hopcast_shared.consumer import BatchedHandler, EventContext, Handler, PermanentError
from hopcast_shared.contract import (
    CreditsDebited,
    CreditsDebitRejected,
    CreditsGranted,
    CreditsRefunded,
    CreditsUsage,
    DebitRejectionReason,
    LedgerAction,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationRestored,
    PendingPostCreated,
    PostPublishFailed,
    RefundReason,
    RunOutcome,
    ScheduleRunCompleted,
    SubscriptionActivated,
)

log = logging.getLogger(__name__)
PRICES = Prices()


async def _usage(
    ctx: EventContext,
    action: LedgerAction,
    amount: int,
    balance_after: int,
    *,
    correlation: str | None = None,
    period_end: datetime | Literal["unknown"] | None = "unknown",
) -> None:
    if amount == 0:
        return
    if period_end == "unknown":
        period_end = await ledger.period_end_of(ctx.conn, ctx.envelope.organizationid)
    await ctx.emit(
        CreditsUsage(action=action, amount=abs(amount), balance_after=balance_after, period_end=period_end),
        correlation_id=correlation,
    )


# --- organizations ---------------------------------------------------------------------------


async def organization_created(ctx: EventContext, data: OrganizationCreated) -> None:
    await projections.upsert_organization(ctx.conn, data.organization_id, data.name)
    await ledger.ensure_balance_row(ctx.conn, data.organization_id)


async def organization_deleted(ctx: EventContext, data: OrganizationDeleted) -> None:
    await projections.set_organization_deleted(ctx.conn, data.organization_id, True)


async def organization_restored(ctx: EventContext, data: OrganizationRestored) -> None:
    await projections.set_organization_deleted(ctx.conn, data.organization_id, False)


# --- credits in ------------------------------------------------------------------------------


async def subscription_activated(ctx: EventContext, data: SubscriptionActivated) -> None:
    """A new period: the previous period's unused credits expire and the plan's credits arrive,
    both as ledger rows. A period older than the current one changes nothing."""
    org = ctx.envelope.organizationid
    start = data.period_start.astimezone(UTC).isoformat()
    key = f"period:{data.subscription_id}:{start}"
    balance = await ledger.lock_balance(ctx.conn, org)
    if await ledger.ledger_has(ctx.conn, org, key):
        return
    current = await ctx.conn.fetchrow("SELECT period_start FROM subscriptions WHERE organization_id = $1", org)
    if current is not None and current["period_start"] > data.period_start:
        log.info("subscription period starting %s is older than the current one; ignored", start)
        return
    await ctx.conn.execute(
        """
        INSERT INTO subscriptions (organization_id, subscription_id, plan, credits_total, period_start, period_end)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (organization_id) DO UPDATE SET subscription_id = EXCLUDED.subscription_id,
            plan = EXCLUDED.plan, credits_total = EXCLUDED.credits_total,
            period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end, updated_at = now()
        """,
        org,
        data.subscription_id,
        data.plan.value,
        data.credits_total,
        data.period_start,
        data.period_end,
    )
    if balance.period:
        after = await ledger.credit_balance(ctx.conn, org, -balance.period, 0)
        await ledger.append_ledger(
            ctx.conn,
            org=org,
            action=LedgerAction.SUBSCRIPTION.value,
            period_amount=-balance.period,
            topup_amount=0,
            key=f"expire:{data.subscription_id}:{start}",
            balance_after=after.total,
        )
    after = await ledger.credit_balance(ctx.conn, org, data.credits_total, 0)
    await ledger.append_ledger(
        ctx.conn,
        org=org,
        action=LedgerAction.SUBSCRIPTION.value,
        period_amount=data.credits_total,
        topup_amount=0,
        key=key,
        balance_after=after.total,
    )
    await _usage(ctx, LedgerAction.SUBSCRIPTION, data.credits_total - balance.period, after.total)


async def credits_granted(ctx: EventContext, data: CreditsGranted) -> None:
    org = ctx.envelope.organizationid
    key = f"grant:{data.grant_id}"
    await ledger.lock_balance(ctx.conn, org)
    if await ledger.ledger_has(ctx.conn, org, key):
        return
    after = await ledger.credit_balance(ctx.conn, org, 0, data.amount)
    await ledger.append_ledger(
        ctx.conn,
        org=org,
        action=LedgerAction.TOPUP.value,
        period_amount=0,
        topup_amount=data.amount,
        key=key,
        balance_after=after.total,
    )
    await _usage(ctx, LedgerAction.TOPUP, data.amount, after.total)


# --- the debit -------------------------------------------------------------------------------


async def debit_for_pending_posts(items: Sequence[tuple[EventContext, PendingPostCreated]]) -> None:
    """GENERATE plus PUBLISH for each post's platforms, taken once or rejected once, in the
    order the posts came; for a batch of them, the same few statements as for one."""
    conn = items[0][0].conn
    prices = [price_of_post(PRICES, len(data.platforms)) for _, data in items]
    claimed = await ledger.claim_debits(
        conn,
        [
            (
                data.pending_post_id,
                ctx.envelope.organizationid,
                data.run_id,
                data.schedule_id,
                data.brand_profile_id,
                _due_at(data),
                [p.value for p in data.platforms],
                price.generate,
                price.publish,
            )
            for (ctx, data), price in zip(items, prices, strict=True)
        ],
    )
    # Each claimed pending post is decided once, by the first of its events in the batch.
    deciding: list[tuple[EventContext, PendingPostCreated, PostPrice, bool]] = []
    for (ctx, data), price in zip(items, prices, strict=True):
        organization_deleted = claimed.pop((ctx.envelope.organizationid, data.pending_post_id), None)
        if organization_deleted is None:
            log.info("pending post %s was already decided; no second debit", data.pending_post_id)
            continue
        deciding.append((ctx, data, price, organization_deleted))
    live = [(ctx.envelope.organizationid, price) for ctx, _, price, deleted in deciding if not deleted]
    # Locked in id order, so concurrent batches cannot deadlock.
    locked = await ledger.lock_balances(conn, list({org for org, _ in live}))
    decided = iter(
        decide({org: balance for org, (balance, _) in locked.items()}, [DebitRequest(o, p) for o, p in live])
    )
    decisions = [None if deleted else next(decided) for _, _, _, deleted in deciding]
    taken: dict[uuid.UUID, tuple[int, int]] = {}
    rows: list[ledger.DebitRow] = []
    for (ctx, data, _, _), decision in zip(deciding, decisions, strict=True):
        if isinstance(decision, Taken):
            org = ctx.envelope.organizationid
            period, topup = taken.get(org, (0, 0))
            taken[org] = (period + decision.from_period, topup + decision.from_topup)
            rows.append(
                ledger.DebitRow(
                    data.pending_post_id, org, data.run_id, decision.from_period, decision.from_topup, decision.parts
                )
            )
    await ledger.take_credits(conn, taken)
    await ledger.record_debits(conn, rows)
    for (ctx, data, price, _), decision in zip(deciding, decisions, strict=True):
        if decision is None:
            # Drafted before content learnt of the deletion (the topics are not ordered between
            # them): nothing is taken, and the run ends here as ORGANIZATION_INACTIVE.
            await _reject(ctx, data, price.total, DebitRejectionReason.ORGANIZATION_INACTIVE)
        elif isinstance(decision, Refused):
            await _reject(ctx, data, price.total, available=decision.available)
        else:
            period_end = locked[ctx.envelope.organizationid][1]
            for part in decision.parts:
                amount = part.from_period + part.from_topup
                await _usage(ctx, part.action, amount, part.balance_after, period_end=period_end)
            await ctx.emit(
                CreditsDebited(
                    pending_post_id=data.pending_post_id,
                    run_id=data.run_id,
                    amount=price.total,
                    action=LedgerAction.GENERATE,
                    balance_after=decision.balance_after.total,
                )
            )
            metrics.CREDITS_DEBITED.inc(price.total)


def _due_at(data: PendingPostCreated) -> datetime | None:
    due: datetime | None = getattr(data, "due_at", None)
    return due


async def _reject(
    ctx: EventContext,
    data: PendingPostCreated,
    requested: int,
    reason: DebitRejectionReason | None = None,
    *,
    available: int | None = None,
) -> None:
    """Reject the debit (nothing is taken) and end the run: INSUFFICIENT_CREDITS, NO_SUBSCRIPTION
    (the organization never had credits of any kind) or ORGANIZATION_INACTIVE."""
    org = ctx.envelope.organizationid
    if available is None:
        available = (await ledger.balance_of(ctx.conn, org)).total
    if reason is None:
        ever_had_credits = await ledger.has_subscription(ctx.conn, org) or await ledger.has_entries(ctx.conn, org)
        reason = DebitRejectionReason.INSUFFICIENT_CREDITS if ever_had_credits else DebitRejectionReason.NO_SUBSCRIPTION
    outcome = (
        RunOutcome.ORGANIZATION_INACTIVE
        if reason is DebitRejectionReason.ORGANIZATION_INACTIVE
        else RunOutcome.INSUFFICIENT_CREDITS
    )
    await ctx.conn.execute(
        "UPDATE debits SET status = 'REJECTED' WHERE organization_id = $1 AND pending_post_id = $2",
        org,
        data.pending_post_id,
    )
    await ctx.emit(
        CreditsDebitRejected(
            pending_post_id=data.pending_post_id,
            run_id=data.run_id,
            requested=requested,
            available=available,
            reason=reason,
        )
    )
    now = datetime.now(UTC)
    await ctx.emit(
        ScheduleRunCompleted(
            run_id=data.run_id,
            schedule_id=data.schedule_id,
            brand_profile_id=data.brand_profile_id,
            outcome=outcome,
            due_at=_due_at(data) or now,
            completed_at=now,
        )
    )
    metrics.DEBITS_REJECTED.labels(reason.value).inc()


# --- refunds ---------------------------------------------------------------------------------


async def _locked_debit(ctx: EventContext, pending_post_id: uuid.UUID) -> asyncpg.Record | None:
    """The event's organization's debit for the pending post, locked; None when it has none.
    Refused when only another organization has one: never refunded to either."""
    org = ctx.envelope.organizationid
    row = await ledger.locked_debit(ctx.conn, org, pending_post_id)
    if row is None and await ledger.debited_elsewhere(ctx.conn, org, pending_post_id=pending_post_id):
        raise PermanentError(f"pending post {pending_post_id} belongs to another organization")
    return row


async def _refund(
    ctx: EventContext,
    debit: asyncpg.Record,
    amount: int,
    reason: RefundReason,
    key: str,
    platform: str | None,
) -> Balance | None:
    """Give back `amount`: to the period bucket up to what it gave, then to top-ups."""
    org = debit["organization_id"]
    left_period = debit["from_period"] - debit["refunded_period"]
    left_topup = debit["from_topup"] - debit["refunded_topup"]
    amount = min(amount, left_period + left_topup)  # never more than was debited
    if amount <= 0:
        return None
    to_period = min(amount, left_period)
    to_topup = amount - to_period
    await ledger.lock_balance(ctx.conn, org)
    after = await ledger.credit_balance(ctx.conn, org, to_period, to_topup)
    await ctx.conn.execute(
        """
        UPDATE debits SET refunded_period = refunded_period + $3, refunded_topup = refunded_topup + $4
        WHERE organization_id = $1 AND pending_post_id = $2
        """,
        org,
        debit["pending_post_id"],
        to_period,
        to_topup,
    )
    await ledger.append_ledger(
        ctx.conn,
        org=org,
        action=LedgerAction.REFUND.value,
        period_amount=to_period,
        topup_amount=to_topup,
        key=key,
        balance_after=after.total,
        pending_post_id=debit["pending_post_id"],
        run_id=debit["run_id"],
        platform=platform,
    )
    await ctx.emit(
        CreditsRefunded(
            pending_post_id=debit["pending_post_id"],
            run_id=debit["run_id"],
            amount=amount,
            balance_after=after.total,
            reason=reason,
        ),
        correlation_id=str(debit["run_id"]),
    )
    await _usage(ctx, LedgerAction.REFUND, amount, after.total, correlation=str(debit["run_id"]))
    return after


async def refund_failed_platform(ctx: EventContext, data: PostPublishFailed) -> None:
    debit = await _locked_debit(ctx, data.pending_post_id)
    platform = data.platform.value
    if debit is None or debit["status"] != "DEBITED" or debit["rejected_at"] is not None:
        return
    if platform not in debit["platforms"] or platform in debit["failed_platforms"]:
        return  # not a platform of this post, or already refunded
    failed = [*debit["failed_platforms"], platform]
    await ctx.conn.execute(
        "UPDATE debits SET failed_platforms = $3 WHERE organization_id = $1 AND pending_post_id = $2",
        debit["organization_id"],
        data.pending_post_id,
        failed,
    )
    refunded_publish = debit["refunded_period"] + debit["refunded_topup"]
    due = publish_refund_due(PRICES, len(debit["platforms"]), len(failed), refunded_publish)
    await _refund(ctx, debit, due, RefundReason.PUBLISH_FAILED, f"refund:{data.pending_post_id}:{platform}", platform)


async def refund_rejected_run(ctx: EventContext, data: ScheduleRunCompleted) -> None:
    """The whole debit, once, when the publisher ended the run REJECTED.

    Not on PendingPostRejected itself (docs/contract.md): the publisher decides whether a
    rejection took effect. It ends a run REJECTED only after it saw the post's successful
    debit, so the debit is always here by then; a rejection that comes after publishing
    started changes nothing there, and so is not refunded here either.
    """
    if data.outcome is not RunOutcome.REJECTED:
        return
    org = ctx.envelope.organizationid
    pending_post_id = await ledger.debit_of_run(ctx.conn, org, data.run_id)
    if pending_post_id is None:
        if await ledger.debited_elsewhere(ctx.conn, org, run_id=data.run_id):
            raise PermanentError(f"run {data.run_id} belongs to another organization")
        log.warning("run %s ended REJECTED but billing has no debit for it; nothing to refund", data.run_id)
        return
    debit = await _locked_debit(ctx, pending_post_id)
    if debit is None or debit["status"] != "DEBITED" or debit["rejected_at"] is not None:
        return
    await ctx.conn.execute(
        "UPDATE debits SET rejected_at = now() WHERE organization_id = $1 AND pending_post_id = $2",
        org,
        pending_post_id,
    )
    await _refund(
        ctx,
        debit,
        debit["from_period"] + debit["from_topup"],
        RefundReason.PENDING_POST_REJECTED,
        f"reject:{debit['pending_post_id']}",
        None,
    )


HANDLERS: dict[str, Handler] = {
    "OrganizationCreated": organization_created,
    "OrganizationDeleted": organization_deleted,
    "OrganizationRestored": organization_restored,
    "SubscriptionActivated": subscription_activated,
    "CreditsGranted": credits_granted,
    "PendingPostCreated": BatchedHandler(debit_for_pending_posts),
    "PostPublishFailed": refund_failed_platform,
    "ScheduleRunCompleted": refund_rejected_run,
}
