"""The pending post as a state machine that takes its inputs in any order.

Inputs: the drafted post (PendingPostCreated), its debit (CreditsDebited or
CreditsDebitRejected), and an approval or a rejection (PendingPostApproved/Rejected). Each
is recorded as it arrives; after each, `decide` says what follows:

- a rejected debit ends the pending post (DEBIT_REJECTED); billing already ended the run
  (ScheduleRunCompleted INSUFFICIENT_CREDITS), so the publisher emits nothing;
- a rejection ends it (REJECTED) once the post and a successful debit are known, and the
  publisher emits ScheduleRunCompleted REJECTED. It waits for the debit on purpose: were the
  debit rejected, billing would already have ended the run, and a run ends exactly once;
- the post, a successful debit and, when the post requires it, an approval start the
  publishing (PUBLISHING);
- a run past its deadline (RunDeadlinePassed) ends it (TIMED_OUT) once the post and a
  successful debit are known, before any platform call: PostPublishFailed TIMED_OUT per
  platform and ScheduleRunCompleted TIMED_OUT (billing refunds them). It waits for the debit
  for the same reason as a rejection;
- anything else waits. An input arriving after the pending post left WAITING (a second
  debit, a late rejection) is recorded and changes nothing;
- a draft that requires approval and has its post and a successful debit but no decision by
  its approval deadline ends EXPIRED (`is_expirable`; the expiry watcher claims it in SQL,
  `adapters/expiry.py`). A decision arriving after that is not recorded (`is_late_decision`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Status(StrEnum):
    WAITING = "WAITING"
    PUBLISHING = "PUBLISHING"
    PUBLISHED = "PUBLISHED"
    PARTIALLY_PUBLISHED = "PARTIALLY_PUBLISHED"
    PUBLISH_FAILED = "PUBLISH_FAILED"
    BRAND_INACTIVE = "BRAND_INACTIVE"
    ORGANIZATION_INACTIVE = "ORGANIZATION_INACTIVE"
    REJECTED = "REJECTED"
    DEBIT_REJECTED = "DEBIT_REJECTED"
    EXPIRED = "EXPIRED"  # manual mode: no decision by the approval deadline
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        return self not in (Status.WAITING, Status.PUBLISHING)


class Debit(StrEnum):
    DEBITED = "DEBITED"
    REJECTED = "REJECTED"


class Approval(StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class Input(StrEnum):
    POST = "POST"
    DEBITED = "DEBITED"
    DEBIT_REJECTED = "DEBIT_REJECTED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    DEADLINE_PASSED = "DEADLINE_PASSED"


class Decision(StrEnum):
    WAIT = "WAIT"  # nothing to do yet
    PUBLISH = "PUBLISH"  # all inputs are here: start publishing
    END_REJECTED = "END_REJECTED"  # rejected: end the run with REJECTED
    END_SILENTLY = "END_SILENTLY"  # the debit was rejected: billing ended the run
    END_TIMED_OUT = "END_TIMED_OUT"  # past the run's deadline: end it TIMED_OUT, no platform call
    NOTHING = "NOTHING"  # already decided: the input changes nothing


@dataclass(frozen=True)
class PendingPost:
    """What the state machine knows of a pending post."""

    status: Status = Status.WAITING
    has_post: bool = False
    requires_approval: bool = False
    debit: Debit | None = None
    approval: Approval | None = None
    deadline_passed: bool = False

    def receive(self, item: Input, *, requires_approval: bool = False) -> PendingPost:
        """Record an input (the first answer of each kind counts; a repeat changes nothing)."""
        if item is Input.POST:
            if self.has_post:
                return self
            return replace(self, has_post=True, requires_approval=requires_approval)
        if item is Input.DEADLINE_PASSED:
            return replace(self, deadline_passed=True)
        if item in (Input.DEBITED, Input.DEBIT_REJECTED):
            if self.debit is not None:
                return self
            return replace(self, debit=Debit.DEBITED if item is Input.DEBITED else Debit.REJECTED)
        if self.approval is not None:
            return self
        return replace(self, approval=Approval.APPROVED if item is Input.APPROVED else Approval.REJECTED)


def is_expirable(post: PendingPost) -> bool:
    """Whether the draft, once past its approval deadline, ends EXPIRED: it waits for a
    decision and for nothing else (`adapters/expiry.claim_expired_drafts` says the same in SQL)."""
    return (
        post.status is Status.WAITING
        and post.has_post
        and post.requires_approval
        and post.debit is Debit.DEBITED
        and post.approval is None
    )


def is_late_decision(post: PendingPost, item: Input) -> bool:
    """An approval or rejection of a draft that already expired: it changes nothing."""
    return post.status is Status.EXPIRED and item in (Input.APPROVED, Input.REJECTED)


def decide(post: PendingPost) -> tuple[Decision, Status]:
    """What follows from what is known, and the status it leads to."""
    if post.status is not Status.WAITING:
        return Decision.NOTHING, post.status
    if post.debit is Debit.REJECTED:
        return Decision.END_SILENTLY, Status.DEBIT_REJECTED
    if post.approval is Approval.REJECTED:
        if post.has_post and post.debit is Debit.DEBITED:
            return Decision.END_REJECTED, Status.REJECTED
        return Decision.WAIT, Status.WAITING
    if post.deadline_passed:
        if post.has_post and post.debit is Debit.DEBITED:
            return Decision.END_TIMED_OUT, Status.TIMED_OUT
        return Decision.WAIT, Status.WAITING
    if not post.has_post or post.debit is not Debit.DEBITED:
        return Decision.WAIT, Status.WAITING
    if post.requires_approval and post.approval is not Approval.APPROVED:
        return Decision.WAIT, Status.WAITING
    return Decision.PUBLISH, Status.PUBLISHING


def step(post: PendingPost, item: Input, *, requires_approval: bool = False) -> tuple[PendingPost, Decision]:
    """Record an input and decide: the new state and what to do."""
    received = post.receive(item, requires_approval=requires_approval)
    decision, status = decide(received)
    return replace(received, status=status), decision
