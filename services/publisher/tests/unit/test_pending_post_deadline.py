"""The pending post's state machine and a run past its deadline: ended TIMED_OUT once it has
the draft and a successful debit, whatever the order; never after publishing started (the
publishing loop stops the calls not started); a rejected debit or a rejection still wins."""

from __future__ import annotations

import itertools

import pytest

from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.pending import Decision, Input, PendingPost, Status, step
from hopcast_shared.contract import RunOutcome


def _run(*inputs: Input, requires_approval: bool = False) -> tuple[PendingPost, list[Decision]]:
    post, decisions = PendingPost(), []
    for item in inputs:
        post, decision = step(post, item, requires_approval=requires_approval)
        decisions.append(decision)
    return post, decisions


@pytest.mark.parametrize("order", list(itertools.permutations([Input.POST, Input.DEBITED, Input.DEADLINE_PASSED])))
def test_a_paid_draft_past_its_deadline_ends_timed_out_once_in_any_order(order: tuple[Input, ...]) -> None:
    post, decisions = _run(*order)
    if order.index(Input.DEADLINE_PASSED) == 2:
        # Complete before the deadline came: publishing started; the loop stops what is not sent.
        assert decisions[-2:] == [Decision.PUBLISH, Decision.NOTHING] and post.status is Status.PUBLISHING
    else:
        assert decisions.count(Decision.END_TIMED_OUT) == 1 and post.status is Status.TIMED_OUT
        assert Decision.PUBLISH not in decisions


def test_a_rejected_debit_is_billings_to_end_even_past_the_deadline() -> None:
    post, decisions = _run(Input.DEADLINE_PASSED, Input.POST, Input.DEBIT_REJECTED)
    assert decisions[-1] is Decision.END_SILENTLY and post.status is Status.DEBIT_REJECTED


def test_a_manual_draft_past_its_deadline_ends_without_waiting_for_the_reviewer() -> None:
    post, decisions = _run(Input.POST, Input.DEBITED, Input.DEADLINE_PASSED, Input.APPROVED, requires_approval=True)
    assert decisions == [Decision.WAIT, Decision.WAIT, Decision.END_TIMED_OUT, Decision.NOTHING]
    assert post.status is Status.TIMED_OUT and Status.TIMED_OUT.is_final


def test_a_run_stopped_by_its_deadline_is_timed_out_unless_something_published() -> None:
    assert run_outcome([False, False], timed_out=True) is RunOutcome.TIMED_OUT
    assert run_outcome([True, False], timed_out=True) is RunOutcome.PARTIALLY_PUBLISHED
    assert run_outcome([False], timed_out=False) is RunOutcome.PUBLISH_FAILED
