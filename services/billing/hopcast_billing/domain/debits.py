"""Deciding debits: which pending posts are paid for, from which bucket, in the order they came.

Pure: given each organization's balance (read under its row lock) and the posts in order,
each post is taken whole or refused whole (never partly), period credits first, then
top-ups; GENERATE is taken before PUBLISH, from the same buckets in the same order, so the
ledger has one row per action. A post that does not fit is refused with what was available
at its turn; a smaller later one may still fit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hopcast_billing.domain.pricing import PostPrice
from hopcast_shared.contract import LedgerAction


@dataclass(frozen=True)
class Balance:
    period: int
    topup: int

    @property
    def total(self) -> int:
        return self.period + self.topup


@dataclass(frozen=True)
class DebitRequest:
    organization_id: uuid.UUID
    price: PostPrice


@dataclass(frozen=True)
class Part:
    """What one action took: from each bucket (positive), and the total balance after it."""

    action: LedgerAction
    from_period: int
    from_topup: int
    balance_after: int


@dataclass(frozen=True)
class Taken:
    from_period: int
    from_topup: int
    balance_after: Balance
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Refused:
    available: int


def decide(balances: Mapping[uuid.UUID, Balance], requests: Sequence[DebitRequest]) -> list[Taken | Refused]:
    """One decision per request, in order; an organization missing from `balances` has nothing."""
    left = dict(balances)
    decisions: list[Taken | Refused] = []
    for request in requests:
        balance = left.get(request.organization_id, Balance(0, 0))
        price = request.price
        if balance.total < price.total:
            decisions.append(Refused(balance.total))
            continue
        from_period = min(balance.period, price.total)
        after = Balance(balance.period - from_period, balance.topup - (price.total - from_period))
        left[request.organization_id] = after
        gen_period = min(from_period, price.generate)
        running = balance.total
        parts: list[Part] = []
        for action, period_part, topup_part in (
            (LedgerAction.GENERATE, gen_period, price.generate - gen_period),
            (LedgerAction.PUBLISH, from_period - gen_period, price.publish - (from_period - gen_period)),
        ):
            if period_part + topup_part == 0:
                continue
            running -= period_part + topup_part
            parts.append(Part(action, period_part, topup_part, running))
        decisions.append(Taken(from_period, price.total - from_period, after, tuple(parts)))
    return decisions
