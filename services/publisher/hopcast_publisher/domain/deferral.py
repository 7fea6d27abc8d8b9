"""A platform put off by its own limits: until when, why, and whether waiting that long is
still within the longest deferral a publication may take (then it fails RETRIES_EXHAUSTED)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hopcast_shared.contract import DeferralReason


@dataclass(frozen=True, slots=True)
class Deferral:
    retry_at: datetime
    reason: DeferralReason
    detail: str
    maybe_sent: bool = True
    """A call that may have created the post went out: ask the platform first at the retry."""


def within_max_deferral(first_tried_at: datetime, retry_at: datetime, max_deferral_s: float) -> bool:
    """Whether publishing may wait until `retry_at`: no later than `max_deferral_s` after
    the attempt was first made."""
    return retry_at <= first_tried_at + timedelta(seconds=max_deferral_s)


def past_max_detail(deferral: Deferral, max_deferral_s: float) -> str:
    """Why a deferral ends the attempt, for PostPublishFailed.detail."""
    hours = max_deferral_s / 3600
    return (
        f"{deferral.detail}; {deferral.reason.value} until {deferral.retry_at.isoformat()}, "
        f"past the longest deferral ({hours:g} h after the first try)"
    )
