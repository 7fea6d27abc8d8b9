"""Prices and refund shares (DESIGN.md "Credits")."""

from __future__ import annotations

import pytest

from hopcast_billing.config import PriceSettings
from hopcast_billing.domain.pricing import Prices, price_of_post, publish_refund_due

PRICES = Prices()


@pytest.mark.parametrize(("platforms", "total"), [(1, 2), (2, 3), (3, 3), (4, 3), (10, 3)])
def test_a_post_costs_generate_plus_publish(platforms: int, total: int) -> None:
    assert price_of_post(PRICES, platforms).total == total
    assert price_of_post(PRICES, platforms).generate == 1


def test_a_failed_platform_refunds_its_share_once_and_never_more_than_publish() -> None:
    assert publish_refund_due(PRICES, 2, failed=1, refunded_so_far=0) == 1
    assert publish_refund_due(PRICES, 2, failed=1, refunded_so_far=1) == 0  # already refunded
    assert publish_refund_due(PRICES, 2, failed=2, refunded_so_far=1) == 1
    # Three platforms cost 2 in all: one failure leaves two platforms, still 2.
    assert publish_refund_due(PRICES, 3, failed=1, refunded_so_far=0) == 0
    assert publish_refund_due(PRICES, 3, failed=2, refunded_so_far=0) == 1
    assert publish_refund_due(PRICES, 3, failed=3, refunded_so_far=1) == 1


@pytest.mark.parametrize("platforms", range(1, 11))
def test_refunds_over_all_failures_add_up_to_the_publish_price(platforms: int) -> None:
    refunded = 0
    for failed in range(1, platforms + 1):
        refunded += publish_refund_due(PRICES, platforms, failed, refunded)
    assert refunded == PRICES.publish(platforms)


def test_prices_are_read_from_the_environment_by_config_not_by_the_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_PRICE_GENERATE", "2")
    monkeypatch.setenv("BILLING_PRICE_PUBLISH_CAP", "5")
    prices = PriceSettings().prices()
    assert price_of_post(prices, 1).total == 3
    assert price_of_post(prices, 4).total == 7
