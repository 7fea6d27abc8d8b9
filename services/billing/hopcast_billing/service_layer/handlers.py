"""Billing's service layer: debits, refunds, grants and subscription periods, each in the
consumer's transaction together with its ledger rows and outbox events. Every handler loads
through `deps.ledger` (adapters/ledger.py), decides in domain/ and writes through the ledger
again; `DISPATCH` says which event each one handles.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from hopcast_billing import metrics
from hopcast_billing.adapters.ledger import DebitClaim, DebitRow, Ledger
from hopcast_billing.domain import descriptions
from hopcast_billing.domain.debits import Balance, DebitRequest, Refused, Taken, decide
from hopcast_billing.domain.pricing import PostPrice, Prices, price_of_post, publish_refund_due
from hopcast_billing.domain.refunds import Debit, refund_of
from hopcast_shared.contract import (
    CreditsDebited,
    CreditsDebitRejected,
    CreditsGranted,
    CreditsRefunded,
    CreditsUsage,
    DebitRejectionReason,
    LedgerAction,
    OrganizationCreated,
    PendingPostCreated,
    PendingPostExpired,
    PostPublishFailed,
    RefundReason,
    RunDeadlinePassed,
    RunOutcome,
    ScheduleRunCompleted,
    SubscriptionActivated,
)
from hopcast_shared.db import Conn
from hopcast_shared.dispatch import Dispatch, batched
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.tenants import tenant_dispatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BillingDeps:
    """What billing's handlers need besides the event: built in bootstrap.py."""

    prices: Prices
    # Billing's state in the event's transaction; unit tests give an in-memory fake.
    ledger: Callable[[Conn], Ledger] = Ledger


async def _usage(
    book: Ledger,
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
        period_end = await book.period_end_of(ctx.envelope.organizationid)
    await ctx.emit(
        CreditsUsage(action=action, amount=abs(amount), balance_after=balance_after, period_end=period_end),
        correlation_id=correlation,
    )


# --- organizations ---------------------------------------------------------------------------


async def open_balance(deps: BillingDeps, ctx: EventContext, data: OrganizationCreated) -> None:
    """After the kernel's projection records a new organization: its balance, at zero."""
    await deps.ledger(ctx.conn).ensure_balance_row(data.organization_id)


# --- credits in ------------------------------------------------------------------------------


async def subscription_activated(deps: BillingDeps, ctx: EventContext, data: SubscriptionActivated) -> None:
    """A new period: the previous period's unused credits expire and the plan's credits arrive,
    both as ledger rows. A period older than the current one changes nothing."""
    book = deps.ledger(ctx.conn)
    org = ctx.envelope.organizationid
    start = data.period_start.astimezone(UTC).isoformat()
    key = f"period:{data.subscription_id}:{start}"
    balance = await book.lock_balance(org)
    if await book.ledger_has(org, key):
        return
    current_start = await book.period_start_of(org)
    if current_start is not None and current_start > data.period_start:
        log.info("subscription period starting %s is older than the current one; ignored", start)
        return
    if balance.period:
        # Written before the new period starts, so the row names the subscription it expires.
        expire = f"expire:{data.subscription_id}:{start}"
        described = descriptions.period_expiry(await book.plan_of(org))
        await _credit(book, org, LedgerAction.SUBSCRIPTION, -balance.period, 0, expire, described)
    await book.start_period(
        org, data.subscription_id, data.plan.value, data.credits_total, data.period_start, data.period_end
    )
    described = descriptions.period_credits(data.plan.value)
    after = await _credit(book, org, LedgerAction.SUBSCRIPTION, data.credits_total, 0, key, described)
    await _usage(book, ctx, LedgerAction.SUBSCRIPTION, data.credits_total - balance.period, after.total)


async def credits_granted(deps: BillingDeps, ctx: EventContext, data: CreditsGranted) -> None:
    book = deps.ledger(ctx.conn)
    org = ctx.envelope.organizationid
    key = f"grant:{data.grant_id}"
    await book.lock_balance(org)
    if await book.ledger_has(org, key):
        return
    after = await _credit(book, org, LedgerAction.TOPUP, 0, data.amount, key, descriptions.grant(data.reason))
    await _usage(book, ctx, LedgerAction.TOPUP, data.amount, after.total)


async def _credit(
    book: Ledger, org: uuid.UUID, action: LedgerAction, period: int, topup: int, key: str, description: str
) -> Balance:
    """Credit the buckets and write its ledger row, keyed once per organization."""
    after = await book.credit_balance(org, period, topup)
    await book.append_ledger(
        org=org,
        action=action.value,
        period_amount=period,
        topup_amount=topup,
        key=key,
        balance_after=after.total,
        description=description,
    )
    return after


# --- the debit -------------------------------------------------------------------------------


async def debit_for_pending_posts(deps: BillingDeps, items: Sequence[tuple[EventContext, PendingPostCreated]]) -> None:
    """GENERATE plus PUBLISH for each post's platforms, taken once or rejected once, in the
    order the posts came; for a batch of them, the same few statements as for one."""
    book = deps.ledger(items[0][0].conn)
    prices = [price_of_post(deps.prices, len(data.platforms)) for _, data in items]
    claimed = await book.claim_debits(
        [
            DebitClaim(
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
    # A run past its deadline before its debit is never debited: billing ends it TIMED_OUT. It
    # knows from RunDeadlinePassed, or (no reviewer to wait for) from the draft's own deadline.
    past = await book.runs_past_deadline([(ctx.envelope.organizationid, data.run_id) for ctx, data, _, _ in deciding])
    now = datetime.now(UTC)
    past |= {(ctx.envelope.organizationid, data.run_id) for ctx, data, _, _ in deciding if _past_deadline(data, now)}
    for ctx, data, price, _ in deciding:
        if (ctx.envelope.organizationid, data.run_id) in past:
            await _reject(book, ctx, data, price.total, DebitRejectionReason.TIMED_OUT)
    deciding = [d for d in deciding if (d[0].envelope.organizationid, d[1].run_id) not in past]
    live = [(ctx.envelope.organizationid, price) for ctx, _, price, deleted in deciding if not deleted]
    # Locked in id order, so concurrent batches cannot deadlock.
    locked = await book.lock_balances(list({org for org, _ in live}))
    decided = iter(
        decide({org: balance for org, (balance, _) in locked.items()}, [DebitRequest(o, p) for o, p in live])
    )
    decisions = [None if deleted else next(decided) for _, _, _, deleted in deciding]
    taken: dict[uuid.UUID, tuple[int, int]] = {}
    rows: list[DebitRow] = []
    for (ctx, data, _, _), decision in zip(deciding, decisions, strict=True):
        if isinstance(decision, Taken):
            org = ctx.envelope.organizationid
            period, topup = taken.get(org, (0, 0))
            taken[org] = (period + decision.from_period, topup + decision.from_topup)
            rows.append(
                DebitRow(
                    data.pending_post_id,
                    org,
                    data.run_id,
                    decision.from_period,
                    decision.from_topup,
                    decision.parts,
                    tuple(p.value for p in data.platforms),
                )
            )
    await book.take_credits(taken)
    await book.record_debits(rows)
    for (ctx, data, price, _), decision in zip(deciding, decisions, strict=True):
        if decision is None:
            # Drafted before content learnt of the deletion (the topics are not ordered between
            # them): nothing is taken, and the run ends here as ORGANIZATION_INACTIVE.
            await _reject(book, ctx, data, price.total, DebitRejectionReason.ORGANIZATION_INACTIVE)
        elif isinstance(decision, Refused):
            await _reject(book, ctx, data, price.total, available=decision.available)
        else:
            period_end = locked[ctx.envelope.organizationid][1]
            for part in decision.parts:
                amount = part.from_period + part.from_topup
                await _usage(book, ctx, part.action, amount, part.balance_after, period_end=period_end)
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


_REJECTION_OUTCOMES = {
    DebitRejectionReason.ORGANIZATION_INACTIVE: RunOutcome.ORGANIZATION_INACTIVE,
    DebitRejectionReason.TIMED_OUT: RunOutcome.TIMED_OUT,
}


async def run_deadline_passed(deps: BillingDeps, ctx: EventContext, data: RunDeadlinePassed) -> None:
    """Remember it: the run's pending post, if not debited yet, never is (`debit_for_pending_posts`).
    One debited already is the publisher's to end; billing refunds it when the run ends."""
    await deps.ledger(ctx.conn).record_run_deadline(ctx.envelope.organizationid, data.run_id)


def _past_deadline(data: PendingPostCreated, now: datetime) -> bool:
    """The draft's deadline has passed and no reviewer's wait can have moved it."""
    return not data.requires_approval and data.deadline is not None and data.deadline <= now


def _due_at(data: PendingPostCreated) -> datetime | None:
    due: datetime | None = getattr(data, "due_at", None)
    return due


async def _reject(
    book: Ledger,
    ctx: EventContext,
    data: PendingPostCreated,
    requested: int,
    reason: DebitRejectionReason | None = None,
    *,
    available: int | None = None,
) -> None:
    """Reject the debit (nothing is taken) and end the run: INSUFFICIENT_CREDITS, NO_SUBSCRIPTION
    (the organization never had credits of any kind), ORGANIZATION_INACTIVE or TIMED_OUT."""
    org = ctx.envelope.organizationid
    if available is None:
        available = (await book.balance_of(org)).total
    if reason is None:
        ever_had_credits = await book.has_subscription(org) or await book.has_entries(org)
        reason = DebitRejectionReason.INSUFFICIENT_CREDITS if ever_had_credits else DebitRejectionReason.NO_SUBSCRIPTION
    outcome = _REJECTION_OUTCOMES.get(reason, RunOutcome.INSUFFICIENT_CREDITS)
    await book.mark_debit_rejected(org, data.pending_post_id)
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


async def _locked_debit(book: Ledger, ctx: EventContext, pending_post_id: uuid.UUID) -> Debit | None:
    """The event's organization's debit for the pending post, locked; None when it has none.
    Refused when only another organization has one: never refunded to either."""
    org = ctx.envelope.organizationid
    debit = await book.locked_debit(org, pending_post_id)
    if debit is None and await book.debited_elsewhere(org, pending_post_id=pending_post_id):
        raise PermanentError(f"pending post {pending_post_id} belongs to another organization")
    return debit


async def _refund(
    book: Ledger,
    ctx: EventContext,
    debit: Debit,
    amount: int,
    reason: RefundReason,
    key: str,
    platform: str | None,
) -> Balance | None:
    """Give back `amount` (domain/refunds.py says from which bucket), with its ledger row."""
    refund = refund_of(debit, amount)
    if refund is None:
        return None
    org = debit.organization_id
    await book.lock_balance(org)
    after = await book.credit_balance(org, refund.to_period, refund.to_topup)
    await book.record_refund(debit, refund.to_period, refund.to_topup)
    await book.append_ledger(
        org=org,
        action=LedgerAction.REFUND.value,
        period_amount=refund.to_period,
        topup_amount=refund.to_topup,
        key=key,
        balance_after=after.total,
        description=descriptions.refund(reason, platform),
        pending_post_id=debit.pending_post_id,
        run_id=debit.run_id,
        platform=platform,
    )
    await ctx.emit(
        CreditsRefunded(
            pending_post_id=debit.pending_post_id,
            run_id=debit.run_id,
            amount=refund.amount,
            balance_after=after.total,
            reason=reason,
        ),
        correlation_id=str(debit.run_id),
    )
    await _usage(book, ctx, LedgerAction.REFUND, refund.amount, after.total, correlation=str(debit.run_id))
    return after


async def refund_failed_platform(deps: BillingDeps, ctx: EventContext, data: PostPublishFailed) -> None:
    await _refund_platform(deps, ctx, data.pending_post_id, data.platform.value)


async def _refund_platform(deps: BillingDeps, ctx: EventContext, pending_post_id: uuid.UUID, platform: str) -> None:
    """A failed platform's share, once (its key is the platform's, whichever event asks)."""
    book = deps.ledger(ctx.conn)
    debit = await _locked_debit(book, ctx, pending_post_id)
    if debit is None or not debit.refundable:
        return
    if platform not in debit.platforms or platform in debit.failed_platforms:
        return  # not a platform of this post, or already refunded
    failed = [*debit.failed_platforms, platform]
    await book.record_failed_platforms(debit, failed)
    due = publish_refund_due(deps.prices, len(debit.platforms), len(failed), debit.refunded)
    key = f"refund:{pending_post_id}:{platform}"
    await _refund(book, ctx, debit, due, RefundReason.PUBLISH_FAILED, key, platform)


async def refund_rejected_run(deps: BillingDeps, ctx: EventContext, data: ScheduleRunCompleted) -> None:
    """The whole debit, once, when the publisher ended the run REJECTED or TIMED_OUT (what is
    left of it: a timed-out platform's PostPublishFailed may have refunded its share first);
    every platform's share when it ended PUBLISH_FAILED.

    Not on PendingPostRejected itself (docs/contract.md): the publisher decides whether a
    rejection took effect. It ends a run REJECTED only after it saw the post's successful
    debit, so the debit is always here by then; a rejection that comes after publishing
    started changes nothing there, and so is not refunded here either.
    """
    if data.outcome not in _REFUNDED_OUTCOMES:
        return
    book = deps.ledger(ctx.conn)
    org = ctx.envelope.organizationid
    pending_post_id = await book.debit_of_run(org, data.run_id)
    if pending_post_id is None:
        if await book.debited_elsewhere(org, run_id=data.run_id):
            raise PermanentError(f"run {data.run_id} belongs to another organization")
        if data.outcome is RunOutcome.REJECTED:
            log.warning("run %s ended REJECTED but billing has no debit for it; nothing to refund", data.run_id)
        return  # a run ended before its debit (content timed it out, billing rejected it)
    debit = await _locked_debit(book, ctx, pending_post_id)
    if debit is None or not debit.refundable:
        return
    if data.outcome is RunOutcome.PUBLISH_FAILED:
        # Nothing published: every platform's share, as its PostPublishFailed would (the same
        # keys, so whichever comes first refunds it). The publisher's last resort ends a run
        # with this event alone when it cannot write the failures (giving_up.py).
        for platform in debit.platforms:
            await _refund_platform(deps, ctx, pending_post_id, platform)
        return
    reason, key = {
        RunOutcome.REJECTED: (RefundReason.PENDING_POST_REJECTED, f"reject:{debit.pending_post_id}"),
        RunOutcome.TIMED_OUT: (RefundReason.RUN_TIMED_OUT, f"timeout:{debit.pending_post_id}"),
    }[data.outcome]
    await book.mark_rejection_refunded(debit)
    await _refund(book, ctx, debit, debit.taken, reason, key, None)


# Outcomes that give credits back: the whole debit (REJECTED, TIMED_OUT: nothing was published)
# or every platform's share (PUBLISH_FAILED).
_REFUNDED_OUTCOMES = frozenset({RunOutcome.REJECTED, RunOutcome.TIMED_OUT, RunOutcome.PUBLISH_FAILED})


async def refund_expired_draft(deps: BillingDeps, ctx: EventContext, data: PendingPostExpired) -> None:
    """The whole debit, once, when the publisher ended a draft EXPIRED (nobody decided in time).
    The publisher expires a draft only after it saw its successful debit, so the debit is here;
    a draft already given back whole (a rejection) is not refunded again."""
    book = deps.ledger(ctx.conn)
    debit = await _locked_debit(book, ctx, data.pending_post_id)
    if debit is None:
        log.warning("pending post %s expired but billing has no debit for it; nothing to refund", data.pending_post_id)
        return
    if not debit.refundable:
        return
    await book.mark_rejection_refunded(debit)  # given back whole: no later refund of any kind
    key = f"expire:{debit.pending_post_id}"
    await _refund(book, ctx, debit, debit.taken, RefundReason.PENDING_POST_EXPIRED, key, None)


DISPATCH: Dispatch = {
    **tenant_dispatch(brands=False, after={"OrganizationCreated": open_balance}),
    "SubscriptionActivated": subscription_activated,
    "CreditsGranted": credits_granted,
    "PendingPostCreated": batched(debit_for_pending_posts),
    "PostPublishFailed": refund_failed_platform,
    "ScheduleRunCompleted": refund_rejected_run,
    "PendingPostExpired": refund_expired_draft,
    "RunDeadlinePassed": run_deadline_passed,
}
