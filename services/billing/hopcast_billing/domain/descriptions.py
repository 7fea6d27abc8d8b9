"""The human line of each ledger row ("Credit deduction for GENERATE"): pure, one function a
kind of row. Migration 0008 writes the same lines for the rows written before it."""

from __future__ import annotations

from collections.abc import Sequence

from hopcast_shared.contract import LedgerAction, RefundReason


def debit(action: LedgerAction, platforms: Sequence[str] = ()) -> str:
    """A debit's row: GENERATE, or PUBLISH with the platforms it pays for."""
    if action is LedgerAction.PUBLISH and platforms:
        return f"Credit deduction for PUBLISH on {', '.join(platforms)}"
    return f"Credit deduction for {action.value}"


def refund(reason: RefundReason, platform: str | None = None) -> str:
    """A refund's row: why, and the platform whose share it is when it is one platform's."""
    return f"Refund: {reason.value} on {platform}" if platform else f"Refund: {reason.value}"


def period_credits(plan: str | None) -> str:
    """The credits a subscription period grants."""
    return f"Subscription {plan} period credits" if plan else "Subscription period credits"


def period_expiry(plan: str | None) -> str:
    """The previous period's unused credits, expired when a new period starts (no roll-over)."""
    return (
        f"Subscription {plan} period credits expired unused" if plan else "Subscription period credits expired unused"
    )


def grant(reason: str) -> str:
    """A CreditsGranted top-up, with upstream's reason on one line."""
    return f"Top-up grant: {' '.join(reason.split())}"
