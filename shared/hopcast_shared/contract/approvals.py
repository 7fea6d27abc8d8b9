"""Events of manual mode beyond approve and reject: the approval deadline (publisher.events)
and the check of a reviewer's edit (content.events). Their own module, like deferral.py, to
keep `events.py` readable; exported from `hopcast_shared.contract` like every other type.

An edit travels: upstream `PendingPostApproved` with `texts` -> content checks each text
against its platform's counting rule and the organization's near-duplicates, and answers
`PendingPostEditAccepted` (which the publisher takes as the approval, with the edited texts)
or `PendingPostEditRefused` (the draft stays waiting). See docs/contract.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from hopcast_shared.contract.enums import Platform
from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.fields import LAX, MAX_PLATFORMS, Id, PlatformTexts, ShortText, Similarity, UtcDatetime

EditedTexts = Annotated[PlatformTexts, Field(min_length=1, max_length=MAX_PLATFORMS)]


class EditRefusalReason(StrEnum):
    TEXT_BREAKS_RULE = "TEXT_BREAKS_RULE"  # over the platform's limit (X's weighted length, graphemes...)
    NEAR_DUPLICATE = "NEAR_DUPLICATE"  # cosine similarity > 0.85 to the organization's recent posts
    NOT_A_PLATFORM_OF_THE_POST = "NOT_A_PLATFORM_OF_THE_POST"  # a text for a platform the post is not for


class PendingPostExpired(EventData):
    """publisher: nobody approved or rejected the draft before its `approval_deadline`; its
    debit is refunded whole (billing) and the run ended EXPIRED (ScheduleRunCompleted)."""

    pending_post_id: Id
    run_id: Id
    approval_deadline: UtcDatetime


class PendingPostEditAccepted(EventData):
    """content: a reviewer's edit (PendingPostApproved with texts, event `approval_id`) passed
    the checks a draft passes; the publisher takes it as the approval and posts `texts`
    (the platforms not edited keep their drafted text)."""

    pending_post_id: Id
    run_id: Id
    approval_id: Id
    texts: EditedTexts
    max_similarity: Similarity


class PendingPostEditRefused(EventData):
    """content: a reviewer's edit failed a check; nothing is approved and the draft stays
    waiting (it may still be approved, edited again, rejected, or expire). `platform` is the
    first text refused (null for none in particular); `detail` says why, never the text."""

    pending_post_id: Id
    run_id: Id
    approval_id: Id
    platform: Annotated[Platform, LAX] | None = None
    reason: Annotated[EditRefusalReason, LAX]
    detail: ShortText
