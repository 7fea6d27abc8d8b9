"""The publishing loop checks a Mastodon text against the account's own instance's limit
(read from its /api/v2/instance), not the 500 content drafts for: a drafted text over a smaller
instance's limit fails that platform PLATFORM_REJECTED with no post call, and a longer text
goes out on an instance that allows it. On the real database, against a fake instance."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeMastodon, serve

pytestmark = pytest.mark.integration


async def _publish_on(db: Any, harness_with: Any, fake: FakeMastodon, text: str) -> Any:
    """One pending post on Mastodon (an account on `fake`) and Bluesky, with `text` drafted for
    Mastodon, published in one round."""
    async with serve(fake) as base_url:
        adapter = MastodonAdapter(options=AdapterOptions(egress=LOOPBACK_EGRESS))
        harness = harness_with({"MASTODON": adapter, "BLUESKY": SandboxAdapter("BLUESKY")})
        tenant = await harness.tenant()
        account = await tenant.account("MASTODON", default=True, token="good-access")  # noqa: S106
        # Upstream may only name public https instances; the fake listens on loopback.
        await db.pool.execute(
            "UPDATE social_accounts SET api_base_url = $1 WHERE id = $2", base_url, uuid.UUID(account)
        )
        await tenant.account("BLUESKY", default=True)
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"])
        post["post"].data["texts"] = {"MASTODON": text, "BLUESKY": "Spring menu #coffee"}
        await harness.deliver(post, "post", "debit")
        assert await harness.publish() == 1
        await adapter.close()
    return harness


async def test_a_draft_over_a_smaller_instance_limit_fails_mastodon_without_a_post(db: Any, harness_with: Any) -> None:
    fake = FakeMastodon(max_characters=300)
    harness = await _publish_on(db, harness_with, fake, "Spring menu. " * 30)  # 390 characters: within 500, not 300

    [failed] = await harness.events("PostPublishFailed", "t.publisher.events")
    assert failed["data"]["platform"] == "MASTODON" and failed["data"]["reason"] == "PLATFORM_REJECTED"
    assert failed["data"]["detail"] == (
        "the text breaks MASTODON's rule on 127.0.0.1 (its limit 300), not sent: 390 characters over the limit of 300"
    )
    assert fake.creates() == 0 and fake.calls == [("GET", "/api/v2/instance")]
    [published] = await harness.events("PostPublished", "t.publisher.events")
    assert published["data"]["platform"] == "BLUESKY"


async def test_a_longer_text_goes_out_on_an_instance_that_allows_it(db: Any, harness_with: Any) -> None:
    fake = FakeMastodon(max_characters=5000)
    text = "Long-form notes from the roastery. " * 40  # 1,400 characters
    harness = await _publish_on(db, harness_with, fake, text)

    assert await harness.events("PostPublishFailed", "t.publisher.events") == []
    assert [p["content"] for p in fake.posts] == [f"<p>{text}</p>"]
