"""Prices in whole credits (DESIGN.md "Credits"), in one place.

GENERATE costs 1; PUBLISH costs 1 per platform, 2 in all for 3 platforms or more. A
failed platform refunds what the post would have cost without it, so refunds over any
sequence of failures never add up to more than the PUBLISH part.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prices:
    """The defaults are the contract's; config.PriceSettings reads other ones from the
    environment (BILLING_PRICE_*) and validates them."""

    generate: int = 1
    publish_per_platform: int = 1
    publish_cap_platforms: int = 3
    publish_cap: int = 2

    def publish(self, platforms: int) -> int:
        if platforms <= 0:
            return 0
        if platforms >= self.publish_cap_platforms:
            return self.publish_cap
        return self.publish_per_platform * platforms


@dataclass(frozen=True)
class PostPrice:
    generate: int
    publish: int

    @property
    def total(self) -> int:
        return self.generate + self.publish


def price_of_post(prices: Prices, platforms: int) -> PostPrice:
    return PostPrice(prices.generate, prices.publish(platforms))


def publish_refund_due(prices: Prices, platforms: int, failed: int, refunded_so_far: int) -> int:
    """What to refund now that `failed` of the post's platforms have failed in all: the
    PUBLISH price of all platforms minus that of the ones left, less what was refunded."""
    owed = prices.publish(platforms) - prices.publish(platforms - failed)
    return max(0, owed - refunded_so_far)
