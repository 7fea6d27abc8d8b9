"""A pending post's media through the publisher (issue 18), on the real database: kept with
their alt texts on the pending post and the post, handed to the adapter as `PostRequest.media`
(the sandbox records them), and never pasted into the text; an older event's `media_urls` are
media without alt text."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.base import PostMedia
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration

MEDIA = [
    {"url": "https://cdn.example/a.jpg", "alt_text": "Two cups on a table", "mime_type": "image/jpeg"},
    {"url": "https://cdn.example/b.png", "alt_text": None, "mime_type": None},
]


def sandbox_post(h: Any, platform: str, pending_post_id: str) -> Any:
    adapter = h.adapters[platform]
    return adapter.posts[f"hopcast-{pending_post_id}-{platform.lower()}"]


async def test_media_and_alt_texts_reach_the_adapter_and_the_post(harness: Any) -> None:
    h = harness
    t = await h.tenant()
    await t.account("BLUESKY", default=True)
    await t.account("INSTAGRAM", default=True)
    post = t.post_events(platforms=["BLUESKY", "INSTAGRAM"])
    post["post"] = t.event("PendingPostCreated", **{**post["post"].data, "media": MEDIA, "texts": {}})
    await h.deliver(post, "post", "debit")
    assert await h.publish() == 1

    expected = tuple(PostMedia(m["url"], m["alt_text"], m["mime_type"]) for m in MEDIA)
    for platform in ("BLUESKY", "INSTAGRAM"):
        recorded = sandbox_post(h, platform, post["pending_post_id"])
        assert recorded.media == expected
        assert "cdn.example" not in recorded.text  # media, not links
    rows = await h.db.pool.fetch(
        "SELECT platform, media FROM posts WHERE pending_post_id = $1 ORDER BY platform",
        uuid.UUID(post["pending_post_id"]),
    )
    assert [(r["platform"], r["media"]) for r in rows] == [("BLUESKY", MEDIA), ("INSTAGRAM", MEDIA)]
    pending_media = await h.db.pool.fetchval(
        "SELECT media FROM pending_posts WHERE id = $1", uuid.UUID(post["pending_post_id"])
    )
    assert pending_media == MEDIA
    assert len(await h.events("PostPublished", "t.publisher.events")) >= 2


async def test_an_older_events_media_urls_are_media_without_alt_text(harness: Any) -> None:
    h = harness
    t = await h.tenant()
    await t.account("MASTODON", default=True)
    post = t.post_events(platforms=["MASTODON"])
    document = json.loads(post["post"].to_json())
    del document["data"]["media"]
    del document["data"]["texts"]  # an event from before texts, too
    document["data"]["media_urls"] = ["https://cdn.example/old.gif"]
    record = as_record(json.dumps(document).encode(), topic="content.events")
    assert await h.consumer.handle_record(record) == "handled"
    await h.deliver(post, "debit")
    assert await h.publish() == 1

    recorded = sandbox_post(h, "MASTODON", post["pending_post_id"])
    assert recorded.media == (PostMedia("https://cdn.example/old.gif"),)
    assert "old.gif" not in recorded.text and recorded.text.startswith(document["data"]["content"])


async def test_a_post_without_media_gives_the_adapter_none(harness: Any) -> None:
    h = harness
    t = await h.tenant()
    await t.account("LINKEDIN", default=True)
    post = t.post_events(platforms=["LINKEDIN"])
    post["post"] = t.event("PendingPostCreated", **{**post["post"].data, "media": []})
    await h.deliver(post, "post", "debit")
    assert await h.publish() == 1
    assert sandbox_post(h, "LINKEDIN", post["pending_post_id"]).media == ()
