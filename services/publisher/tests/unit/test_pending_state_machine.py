"""The pending post's state machine: every order of its inputs leads to the same end."""

from __future__ import annotations

import itertools

import pytest

from hopcast_publisher.domain.pending import Decision, Input, PendingPost, Status, decide, step


def run(inputs: list[Input], *, requires_approval: bool = False) -> tuple[PendingPost, list[Decision]]:
    state = PendingPost()
    decisions = []
    for item in inputs:
        state, decision = step(state, item, requires_approval=requires_approval)
        decisions.append(decision)
    return state, decisions


@pytest.mark.parametrize("order", list(itertools.permutations([Input.POST, Input.DEBITED])))
def test_autopilot_publishes_once_whatever_came_first(order: tuple[Input, ...]) -> None:
    state, decisions = run(list(order))
    assert state.status is Status.PUBLISHING
    assert decisions == [Decision.WAIT, Decision.PUBLISH]


@pytest.mark.parametrize("order", list(itertools.permutations([Input.POST, Input.DEBITED, Input.APPROVED])))
def test_manual_mode_publishes_only_after_approval_in_any_order(order: tuple[Input, ...]) -> None:
    state, decisions = run(list(order), requires_approval=True)
    assert state.status is Status.PUBLISHING
    assert decisions.count(Decision.PUBLISH) == 1
    assert decisions[-1] is Decision.PUBLISH  # never before all three arrived


def test_manual_mode_without_approval_waits() -> None:
    state, decisions = run([Input.POST, Input.DEBITED], requires_approval=True)
    assert state.status is Status.WAITING
    assert decisions == [Decision.WAIT, Decision.WAIT]


@pytest.mark.parametrize("order", list(itertools.permutations([Input.POST, Input.DEBITED, Input.REJECTED])))
def test_a_rejection_ends_the_run_once_post_and_debit_are_known(order: tuple[Input, ...]) -> None:
    state, decisions = run(list(order), requires_approval=True)
    assert state.status is Status.REJECTED
    assert decisions.count(Decision.END_REJECTED) == 1
    assert decisions[-1] is Decision.END_REJECTED
    assert Decision.PUBLISH not in decisions


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations([Input.POST, Input.DEBIT_REJECTED, Input.APPROVED]))
    + list(itertools.permutations([Input.POST, Input.DEBIT_REJECTED, Input.REJECTED])),
)
def test_a_rejected_debit_ends_it_silently_whatever_else_arrives(order: tuple[Input, ...]) -> None:
    state, decisions = run(list(order), requires_approval=True)
    assert state.status is Status.DEBIT_REJECTED
    # billing ended the run (INSUFFICIENT_CREDITS); the publisher must not end it a second time
    assert Decision.END_REJECTED not in decisions
    assert Decision.PUBLISH not in decisions
    assert decisions.count(Decision.END_SILENTLY) == 1


def test_a_rejected_debit_alone_ends_it_before_the_post_arrives() -> None:
    state, decisions = run([Input.DEBIT_REJECTED, Input.POST])
    assert decisions == [Decision.END_SILENTLY, Decision.NOTHING]
    assert state.status is Status.DEBIT_REJECTED and state.has_post


def test_a_second_debit_changes_nothing() -> None:
    state, _ = run([Input.POST, Input.DEBITED])
    again, decision = step(state, Input.DEBITED)
    assert decision is Decision.NOTHING and again == state


def test_inputs_after_publishing_started_change_nothing() -> None:
    state, _ = run([Input.POST, Input.DEBITED])
    for late in (Input.REJECTED, Input.DEBIT_REJECTED, Input.APPROVED, Input.POST):
        after, decision = step(state, late)
        assert decision is Decision.NOTHING
        assert after.status is Status.PUBLISHING


def test_first_answer_of_each_kind_counts() -> None:
    state, _ = run([Input.APPROVED, Input.REJECTED, Input.POST, Input.DEBITED], requires_approval=True)
    assert state.status is Status.PUBLISHING


def test_final_statuses() -> None:
    assert not Status.WAITING.is_final and not Status.PUBLISHING.is_final
    assert all(s.is_final for s in Status if s not in (Status.WAITING, Status.PUBLISHING))
    assert decide(PendingPost(status=Status.PUBLISHED, has_post=True)) == (Decision.NOTHING, Status.PUBLISHED)
