"""A pending post whose LinkedIn call meets a sunset LinkedIn-Version ends with
PostPublishFailed API_VERSION_RETIRED for LinkedIn (what billing refunds, like any failed
platform), after one call; its other platforms go out. On the real database, against the fake
LinkedIn."""

from __future__ import annotations

from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeLinkedIn, serve

pytestmark = pytest.mark.integration


async def test_a_sunset_linkedin_version_fails_linkedin_api_version_retired(db: Any, harness_with: Any) -> None:
    fake = FakeLinkedIn()
    async with serve(fake) as base_url:
        adapter = LinkedInAdapter(api_url=base_url, version="202506", options=AdapterOptions(egress=LOOPBACK_EGRESS))
        harness = harness_with({"LINKEDIN": adapter, "BLUESKY": SandboxAdapter("BLUESKY")})
        tenant = await harness.tenant()
        await tenant.account(
            "LINKEDIN",
            default=True,
            token="good-access",  # noqa: S106
            external_account_id="urn:li:person:abc123",
        )
        await tenant.account("BLUESKY", default=True)
        post = tenant.post_events(platforms=["LINKEDIN", "BLUESKY"])
        await harness.deliver(post, "post", "debit")
        assert await harness.publish() == 1
        await adapter.close()

    [failed] = await harness.events("PostPublishFailed", "t.publisher.events")
    assert failed["data"]["platform"] == "LINKEDIN"
    assert failed["data"]["reason"] == "API_VERSION_RETIRED"
    assert "PUBLISHER_LINKEDIN_VERSION" in failed["data"]["detail"]
    assert fake.creates() == 1 and fake.posts == []
    [completed] = await harness.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "PARTIALLY_PUBLISHED"
