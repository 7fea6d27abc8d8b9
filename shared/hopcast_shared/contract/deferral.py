"""publisher.events about a platform call put off by the platform's own limits: the publisher
waits for the reset instead of failing, and says so. Its own module, like account_health.py,
to keep `events.py` readable; exported from `hopcast_shared.contract` like every other type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from hopcast_shared.contract.enums import Platform
from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.fields import LAX, Id, UtcDatetime


class DeferralReason(StrEnum):
    RATE_LIMITED = "RATE_LIMITED"  # a 429 or a short window (15 minutes, 5 minutes) used up
    DAILY_CAP = "DAILY_CAP"  # a 24-hour cap of the account or the app (X, LinkedIn) used up


class PostPublishDeferred(EventData):
    """publisher: publishing on one platform waits until `retry_at`, when the platform's limit
    resets (the run is not over: a PostPublished or a PostPublishFailed follows). Emitted
    each time a platform is put off; nothing is refunded."""

    pending_post_id: Id
    run_id: Id
    platform: Annotated[Platform, LAX]
    retry_at: UtcDatetime
    reason: Annotated[DeferralReason, LAX]
