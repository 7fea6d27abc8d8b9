"""The debit decision on its own: in order, whole or nothing, period credits first, never below zero."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from hopcast_billing.domain.debits import Balance, DebitRequest, Refused, Taken, decide
from hopcast_billing.domain.pricing import PostPrice
from hopcast_shared.contract import LedgerAction

ORGS = [uuid.UUID(int=i) for i in range(1, 4)]


def test_a_post_that_does_not_fit_is_refused_and_a_smaller_later_one_still_fits() -> None:
    org = ORGS[0]
    decisions = decide(
        {org: Balance(period=1, topup=2)},
        [DebitRequest(org, PostPrice(1, 1)), DebitRequest(org, PostPrice(1, 2)), DebitRequest(org, PostPrice(1, 0))],
    )
    first, second, third = decisions
    assert isinstance(first, Taken) and (first.from_period, first.from_topup) == (1, 1)
    assert [(p.action, p.from_period, p.from_topup, p.balance_after) for p in first.parts] == [
        (LedgerAction.GENERATE, 1, 0, 2),
        (LedgerAction.PUBLISH, 0, 1, 1),
    ]
    assert second == Refused(available=1)
    assert isinstance(third, Taken) and third.balance_after == Balance(0, 0)


def test_an_organization_without_a_balance_has_nothing() -> None:
    assert decide({}, [DebitRequest(ORGS[0], PostPrice(1, 1))]) == [Refused(0)]


@given(
    balances=st.dictionaries(
        st.sampled_from(ORGS), st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: Balance(*t))
    ),
    requests=st.lists(
        st.tuples(st.sampled_from(ORGS), st.integers(0, 3), st.integers(0, 4)).map(
            lambda t: DebitRequest(t[0], PostPrice(t[1], t[2]))
        ),
        max_size=30,
    ),
)
def test_decisions_follow_the_balance_in_order(
    balances: dict[uuid.UUID, Balance], requests: list[DebitRequest]
) -> None:
    left = dict(balances)
    for request, decision in zip(requests, decide(balances, requests), strict=True):
        before = left.get(request.organization_id, Balance(0, 0))
        if isinstance(decision, Refused):
            assert decision.available == before.total < request.price.total
            continue
        # Whole, period credits first, never below zero; the parts add up to the split.
        assert decision.from_period + decision.from_topup == request.price.total
        assert decision.from_period == min(before.period, request.price.total)
        after = decision.balance_after
        assert after == Balance(before.period - decision.from_period, before.topup - decision.from_topup)
        assert after.period >= 0 and after.topup >= 0
        assert sum(p.from_period for p in decision.parts) == decision.from_period
        assert sum(p.from_topup for p in decision.parts) == decision.from_topup
        assert [p.balance_after for p in decision.parts][-1:] in ([after.total], [])
        left[request.organization_id] = after
