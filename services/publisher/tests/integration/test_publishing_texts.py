"""The publisher posts exactly the text content drafted for each platform
(PendingPostCreated.texts), checks it against the platform's own rule first (a text the rule
refuses fails that platform PLATFORM_REJECTED, with no call), and composes the text as
before for a draft from before texts existed. On the real database."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter

pytestmark = pytest.mark.integration


def sandbox(h: Any, platform: str) -> SandboxAdapter:
    adapter = h.adapters[platform]
    assert isinstance(adapter, SandboxAdapter)
    return adapter


async def stored_posts(h: Any, pending_post_id: str) -> dict[str, str]:
    rows = await h.db.pool.fetch(
        "SELECT platform, content FROM posts WHERE pending_post_id = $1", uuid.UUID(pending_post_id)
    )
    return {r["platform"]: r["content"] for r in rows}


async def test_each_platform_gets_exactly_its_drafted_text(harness: Any) -> None:
    tenant = await harness.tenant()
    for platform in ("TWITTER", "BLUESKY", "MASTODON"):
        await tenant.account(platform, default=True)
    texts = {
        "TWITTER": "故人西辞黄鹤楼 " * 18 + "…",  # 272 weighted: within X's 280
        "BLUESKY": "Spring menu 👨‍👩‍👧‍👦 https://example.com/spring #coffee",
        "MASTODON": "Spring menu, thanks @alice@mastodon.social! https://example.com/" + "x" * 600,
    }
    post = tenant.post_events(platforms=list(texts))
    post["post"].data["texts"] = texts
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 1

    sent = {p: [s.text for s in sandbox(harness, p).posts.values()] for p in texts}
    assert sent == {p: [t] for p, t in texts.items()}
    assert await stored_posts(harness, post["pending_post_id"]) == texts
    assert len(await harness.events("PostPublished", "t.publisher.events")) == 3


async def test_a_text_over_the_platform_rule_fails_that_platform_without_a_call(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("TWITTER", default=True)
    await tenant.account("BLUESKY", default=True)
    # 141 CJK characters: 141 code points, but 282 of X's weighted 280.
    texts = {"TWITTER": "故" * 141, "BLUESKY": "故" * 141}
    post = tenant.post_events(platforms=["TWITTER", "BLUESKY"])
    post["post"].data["texts"] = texts
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 1

    assert sandbox(harness, "TWITTER").calls == 0
    assert [s.text for s in sandbox(harness, "BLUESKY").posts.values()] == ["故" * 141]
    [failed] = await harness.events("PostPublishFailed", "t.publisher.events")
    assert failed["data"]["platform"] == "TWITTER" and failed["data"]["reason"] == "PLATFORM_REJECTED"
    assert failed["data"]["detail"].startswith("the text breaks TWITTER's rule, not sent: weighs 282 of X's 280")
    [completed] = await harness.events("ScheduleRunCompleted")
    assert completed["data"]["outcome"] == "PARTIALLY_PUBLISHED"


async def test_a_draft_without_texts_is_composed_as_before(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("LINKEDIN", default=True)
    post = tenant.post_events(platforms=["LINKEDIN"])
    data = post["post"].data
    del data["texts"]
    await harness.deliver(post, "post", "debit")
    assert await harness.publish() == 1

    row = await harness.db.pool.fetchrow(
        "SELECT texts FROM pending_posts WHERE id = $1", uuid.UUID(post["pending_post_id"])
    )
    assert row["texts"] == {}
    expected = data["content"] + "\n\n" + " ".join(data["hashtags"])
    assert [s.text for s in sandbox(harness, "LINKEDIN").posts.values()] == [expected]
    assert json.dumps(await stored_posts(harness, post["pending_post_id"])) == json.dumps({"LINKEDIN": expected})
