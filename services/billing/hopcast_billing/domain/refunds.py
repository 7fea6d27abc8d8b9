"""Deciding refunds: which share of a debit goes back, and to which bucket.

Pure: a `Debit` is what billing holds of one pending post's debit; a refund never gives back
more than the debit took, and returns period credits first (up to what the period bucket
gave), then top-ups.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

DEBITED = "DEBITED"


@dataclass(frozen=True)
class Debit:
    organization_id: uuid.UUID
    pending_post_id: uuid.UUID
    run_id: uuid.UUID
    status: str
    platforms: tuple[str, ...]
    failed_platforms: tuple[str, ...]
    from_period: int
    from_topup: int
    refunded_period: int
    refunded_topup: int
    rejected_at: datetime | None

    @property
    def refundable(self) -> bool:
        """Taken, and not given back whole on a rejection."""
        return self.status == DEBITED and self.rejected_at is None

    @property
    def taken(self) -> int:
        return self.from_period + self.from_topup

    @property
    def refunded(self) -> int:
        return self.refunded_period + self.refunded_topup


@dataclass(frozen=True)
class Refund:
    to_period: int
    to_topup: int

    @property
    def amount(self) -> int:
        return self.to_period + self.to_topup


def refund_of(debit: Debit, amount: int) -> Refund | None:
    """Give back `amount` of the debit (never more than it has left): to the period bucket up
    to what it gave, then to top-ups. None when there is nothing to give back."""
    left_period = debit.from_period - debit.refunded_period
    left_topup = debit.from_topup - debit.refunded_topup
    amount = min(amount, left_period + left_topup)
    if amount <= 0:
        return None
    to_period = min(amount, left_period)
    return Refund(to_period, amount - to_period)
