"""Billing's handlers against an in-memory ledger: given these events, expect those events and
those balances. The same handlers run on the real database in tests/integration; here the
ledger is a fake that subclasses the real one, so only the service layer's choices are tested."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from hopcast_billing.adapters.ledger import DebitClaim, DebitRow, Ledger
from hopcast_billing.domain.debits import Balance
from hopcast_billing.domain.pricing import Prices
from hopcast_billing.domain.refunds import Debit
from hopcast_billing.service_layer.handlers import (
    BillingDeps,
    credits_granted,
    debit_for_pending_posts,
    refund_failed_platform,
)
from hopcast_shared.contract import CreditsGranted, PendingPostCreated, PostPublishFailed
from hopcast_shared.contract.examples import example_event
from hopcast_shared.handling import EventContext
from hopcast_shared.settings import KafkaSettings

ORG = uuid.uuid4()


class FakeLedger(Ledger):
    """Balances, ledger rows and debits in dicts; no transaction, no SQL."""

    def __init__(self) -> None:
        self.past_deadline: set[tuple[uuid.UUID, uuid.UUID]] = set()
        super().__init__(cast(Any, None))
        self.balances: dict[uuid.UUID, Balance] = {}
        self.rows: list[dict[str, Any]] = []
        self.debits: dict[tuple[uuid.UUID, uuid.UUID], Debit] = {}

    async def ensure_balance_row(self, org: uuid.UUID) -> None:
        self.balances.setdefault(org, Balance(0, 0))

    async def lock_balance(self, org: uuid.UUID) -> Balance:
        await self.ensure_balance_row(org)
        return self.balances[org]

    async def balance_of(self, org: uuid.UUID) -> Balance:
        return self.balances.get(org, Balance(0, 0))

    async def lock_balances(self, orgs: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[Balance, datetime | None]]:
        return {org: (self.balances[org], None) for org in orgs if org in self.balances}

    async def take_credits(self, taken: Mapping[uuid.UUID, tuple[int, int]]) -> None:
        for org, (period, topup) in taken.items():
            before = self.balances[org]
            assert before.period >= period and before.topup >= topup, "never below zero"
            self.balances[org] = Balance(before.period - period, before.topup - topup)

    async def credit_balance(self, org: uuid.UUID, period: int, topup: int) -> Balance:
        before = await self.lock_balance(org)
        self.balances[org] = Balance(before.period + period, before.topup + topup)
        return self.balances[org]

    async def append_ledger(self, **row: Any) -> None:
        self.rows.append(row)

    async def ledger_has(self, org: uuid.UUID, key: str) -> bool:
        return any(r["org"] == org and r["key"] == key for r in self.rows)

    async def has_entries(self, org: uuid.UUID) -> bool:
        return any(r["org"] == org for r in self.rows)

    async def claim_debits(self, claims: Sequence[DebitClaim]) -> dict[tuple[uuid.UUID, uuid.UUID], bool]:
        claimed = {}
        for c in claims:
            key = (c.organization_id, c.pending_post_id)
            if key not in self.debits:
                self.debits[key] = Debit(
                    c.organization_id, c.pending_post_id, c.run_id, "DECIDING", tuple(c.platforms), (), 0, 0, 0, 0, None
                )
                claimed[key] = False
        return claimed

    async def record_debits(self, debits: Sequence[DebitRow]) -> None:
        for d in debits:
            key = (d.organization_id, d.pending_post_id)
            self.debits[key] = _with(
                self.debits[key], status="DEBITED", from_period=d.from_period, from_topup=d.from_topup
            )
            for part in d.parts:
                self.rows.append({"org": d.organization_id, "key": f"debit:{d.pending_post_id}:{part.action.value}"})

    async def runs_past_deadline(self, runs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        return set(runs) & self.past_deadline

    async def record_run_deadline(self, org: uuid.UUID, run_id: uuid.UUID) -> None:
        self.past_deadline.add((org, run_id))

    async def mark_debit_rejected(self, org: uuid.UUID, pending_post_id: uuid.UUID) -> None:
        self.debits[(org, pending_post_id)] = _with(self.debits[(org, pending_post_id)], status="REJECTED")

    async def locked_debit(self, org: uuid.UUID, pending_post_id: uuid.UUID) -> Debit | None:
        return self.debits.get((org, pending_post_id))

    async def debited_elsewhere(
        self, org: uuid.UUID, *, pending_post_id: uuid.UUID | None = None, run_id: uuid.UUID | None = None
    ) -> bool:
        return any(o != org and (p == pending_post_id or d.run_id == run_id) for (o, p), d in self.debits.items())

    async def record_failed_platforms(self, debit: Debit, failed: Sequence[str]) -> None:
        key = (debit.organization_id, debit.pending_post_id)
        self.debits[key] = _with(self.debits[key], failed_platforms=tuple(failed))

    async def record_refund(self, debit: Debit, to_period: int, to_topup: int) -> None:
        key = (debit.organization_id, debit.pending_post_id)
        now = self.debits[key]
        self.debits[key] = _with(
            now, refunded_period=now.refunded_period + to_period, refunded_topup=now.refunded_topup + to_topup
        )

    async def period_end_of(self, org: uuid.UUID) -> datetime | None:
        return None

    async def has_subscription(self, org: uuid.UUID) -> bool:
        return False


def _with(debit: Debit, **changes: Any) -> Debit:
    return Debit(**{**debit.__dict__, **changes})


def _ctx(type_name: str, **data: Any) -> tuple[EventContext, Any]:
    envelope = example_event(type_name, organization_id=ORG, **data)
    ctx = EventContext(cast(Any, None), envelope, "billing", KafkaSettings())
    model = {"CreditsGranted": CreditsGranted, "PendingPostCreated": PendingPostCreated}.get(
        type_name, PostPublishFailed
    )
    return ctx, model.model_validate(envelope.data)


def _emitted(*contexts: EventContext) -> list[tuple[str, dict[str, Any]]]:
    events = [json.loads(row.payload) for ctx in contexts for row in ctx.outbox]
    return [(e["type"], e["data"]) for e in events]


def _post(platforms: list[str]) -> tuple[EventContext, Any]:
    return _ctx("PendingPostCreated", pending_post_id=str(uuid.uuid4()), run_id=str(uuid.uuid4()), platforms=platforms)


async def test_posts_are_debited_in_order_until_the_credits_run_out_then_rejected() -> None:
    ledger = FakeLedger()
    deps = BillingDeps(prices=Prices(), ledger=lambda conn: ledger)
    await credits_granted(deps, *_ctx("CreditsGranted", grant_id=str(uuid.uuid4()), amount=5))
    posts = [_post(["TWITTER", "LINKEDIN"]), _post(["TWITTER", "LINKEDIN"]), _post(["TWITTER"])]

    await debit_for_pending_posts(deps, posts)

    first, second, third = (_emitted(ctx) for ctx, _ in posts)
    assert [t for t, _ in first] == ["CreditsUsage", "CreditsUsage", "CreditsDebited"]
    assert first[-1][1]["amount"] == 3 and first[-1][1]["balance_after"] == 2
    assert [t for t, _ in second] == ["CreditsDebitRejected", "ScheduleRunCompleted"]
    assert second[0][1]["reason"] == "INSUFFICIENT_CREDITS" and second[0][1]["available"] == 2
    assert second[1][1]["outcome"] == "INSUFFICIENT_CREDITS"
    assert third[-1][0] == "CreditsDebited" and third[-1][1]["balance_after"] == 0  # a smaller one still fits
    assert ledger.balances[ORG] == Balance(0, 0)


async def test_a_redelivered_pending_post_is_not_debited_twice() -> None:
    ledger = FakeLedger()
    deps = BillingDeps(prices=Prices(), ledger=lambda conn: ledger)
    await credits_granted(deps, *_ctx("CreditsGranted", grant_id=str(uuid.uuid4()), amount=10))
    ctx, post = _post(["TWITTER"])
    again = EventContext(ctx.conn, ctx.envelope, "billing", ctx.kafka)

    await debit_for_pending_posts(deps, [(ctx, post), (again, post)])

    assert _emitted(again) == []
    assert ledger.balances[ORG] == Balance(0, 8)


async def test_a_failed_platform_is_refunded_its_share_once() -> None:
    ledger = FakeLedger()
    deps = BillingDeps(prices=Prices(), ledger=lambda conn: ledger)
    await credits_granted(deps, *_ctx("CreditsGranted", grant_id=str(uuid.uuid4()), amount=10))
    ctx, post = _post(["TWITTER", "LINKEDIN"])
    await debit_for_pending_posts(deps, [(ctx, post)])
    failed = {"pending_post_id": str(post.pending_post_id), "run_id": str(post.run_id), "platform": "TWITTER"}

    first, second = _ctx("PostPublishFailed", **failed), _ctx("PostPublishFailed", **failed)
    await refund_failed_platform(deps, *first)
    await refund_failed_platform(deps, *second)

    assert [t for t, _ in _emitted(first[0])] == ["CreditsRefunded", "CreditsUsage"]
    assert _emitted(first[0])[0][1]["amount"] == 1 and _emitted(first[0])[0][1]["reason"] == "PUBLISH_FAILED"
    assert _emitted(second[0]) == []
    assert ledger.balances[ORG] == Balance(0, 8)
    assert ledger.debits[(ORG, post.pending_post_id)].failed_platforms == ("TWITTER",)
