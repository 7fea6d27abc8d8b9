"""The brand's language (BrandProfile `language`, docs/contract.md) reaches the platform call
(`PostRequest.language`, which the Bluesky adapter sends as `langs`), read from the brand as
the publisher keeps it when the post is published; a post with media says so (no link card
beside it). On the real database."""

from __future__ import annotations

from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, Published, TokensRefreshed
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_shared.contract import Platform

pytestmark = pytest.mark.integration


class RecordingSandbox(SandboxAdapter):
    """The sandbox, keeping every request it was asked to publish."""

    def __init__(self, platform: str) -> None:
        super().__init__(platform)
        self.requests: list[PostRequest] = []

    async def publish(
        self, account: AccountCredentials, request: PostRequest, *, resumed: bool, on_refreshed: TokensRefreshed
    ) -> Published:
        self.requests.append(request)
        return await super().publish(account, request, resumed=resumed, on_refreshed=on_refreshed)


@pytest.fixture
def harness(harness_with: Any) -> Any:
    """conftest's harness, with sandboxes that keep the requests they are given."""
    return harness_with({p.value: RecordingSandbox(p.value) for p in Platform})


def requests_of(h: Any) -> list[PostRequest]:
    adapter = h.adapters["BLUESKY"]
    assert isinstance(adapter, RecordingSandbox)
    return adapter.requests


async def test_the_brands_language_reaches_the_platform_call(harness: Any) -> None:
    tenant = await harness.tenant()
    await harness.send(tenant.event("BrandProfileUpdated", brand_profile_id=tenant.brand, language="pt-BR"))
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    post["post"].data["media"] = []
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 1
    [request] = requests_of(harness)
    assert (request.language, request.has_media) == ("pt-BR", False)


async def test_a_brand_without_a_language_posts_without_one(harness: Any) -> None:
    tenant = await harness.tenant()
    await harness.send(tenant.event("BrandProfileUpdated", brand_profile_id=tenant.brand, language=None))
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    post["post"].data["media"] = [{"url": "https://cdn.example.com/spring.jpg"}]
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 1
    [request] = requests_of(harness)
    assert (request.language, request.has_media) == (None, True)
