"""The state machine's part in approval deadlines: which drafts may expire, and which inputs
come too late to change an expired one."""

from __future__ import annotations

import pytest

from hopcast_publisher.domain.pending import (
    Approval,
    Debit,
    Decision,
    Input,
    PendingPost,
    Status,
    decide,
    is_expirable,
    is_late_decision,
)

WAITING_FOR_A_DECISION = PendingPost(has_post=True, requires_approval=True, debit=Debit.DEBITED)


def test_only_a_draft_that_waits_for_a_decision_alone_may_expire() -> None:
    assert is_expirable(WAITING_FOR_A_DECISION)
    assert not is_expirable(PendingPost(has_post=True, requires_approval=True))  # its debit is unknown
    assert not is_expirable(PendingPost(has_post=True, requires_approval=False, debit=Debit.DEBITED))
    assert not is_expirable(PendingPost(has_post=True, requires_approval=True, debit=Debit.REJECTED))
    assert not is_expirable(
        PendingPost(has_post=True, requires_approval=True, debit=Debit.DEBITED, approval=Approval.REJECTED)
    )
    assert not is_expirable(PendingPost(Status.PUBLISHING, True, True, Debit.DEBITED, Approval.APPROVED))


@pytest.mark.parametrize("item", [Input.APPROVED, Input.REJECTED])
def test_a_decision_on_an_expired_draft_is_late_and_decides_nothing(item: Input) -> None:
    expired = PendingPost(Status.EXPIRED, True, True, Debit.DEBITED)
    assert is_late_decision(expired, item)
    assert not is_late_decision(WAITING_FOR_A_DECISION, item)
    assert not is_late_decision(expired, Input.DEBITED)
    assert decide(expired) == (Decision.NOTHING, Status.EXPIRED)
    assert Status.EXPIRED.is_final
