"""Media end to end (issue 18), through Kafka and the four services: a material's images and alt
texts end in published posts (sandbox) that keep them; `media_urls` from an older producer still
work; a platform that needs media is left out of a text-only post before the debit, with its
reason, and is not charged; a run whose every platform is left out ends ALL_PLATFORMS_LEFT_OUT
with no debit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from hopcast_shared.contract import Envelope
from hopcast_shared.topics import PUBLISHER
from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.upstream import Message, structured

pytestmark = pytest.mark.e2e

COFFEE = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
MEDIA = [
    {"url": "https://cdn.example/e2e/roaster.jpg", "alt_text": "Ana at the drum roaster", "mime_type": "image/jpeg"},
    {"url": "https://cdn.example/e2e/cups.png", "alt_text": "Three cups on a counter", "mime_type": "image/png"},
]


async def posts_of(t: Tenant, dashboard: Dashboard, run: str) -> dict[str, dict[str, Any]]:
    """The run's published posts as the publisher's read route shows them, by platform."""
    found = {}
    for published in dashboard.events("PostPublished", run=run, topic=PUBLISHER):
        status, body = await t.hopcast.get_json(
            "publisher", f"/posts/{published['data']['post_id']}", organization=t.org
        )
        assert status == 200, body
        found[body["platform"]] = body
    return found


async def send_as_an_older_producer(t: Tenant, material: Envelope, media_urls: list[str]) -> None:
    """The material as a producer from before media wrote it: `media_urls`, no `media`."""

    def older(event: Envelope) -> Message:
        value, headers = structured(event)
        document = json.loads(value)
        del document["data"]["media"]
        document["data"]["media_urls"] = media_urls
        return json.dumps(document).encode(), headers

    t.upstream.encode = older
    try:
        await t.send(material)
    finally:
        t.upstream.encode = structured


async def test_images_and_alt_texts_end_in_the_published_posts(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(accounts=("BLUESKY", "INSTAGRAM"))
    await t.send(t.material_event(COFFEE, media=MEDIA))
    schedule = await t.schedule(["BLUESKY", "INSTAGRAM"])
    await t.landed()

    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "PUBLISHED"
    [draft] = dashboard.events("PendingPostCreated", run=run)
    assert draft["data"]["media"] == MEDIA and draft["data"]["platforms_left_out"] == []
    posts = await posts_of(t, dashboard, run)
    assert set(posts) == {"BLUESKY", "INSTAGRAM"}
    for post in posts.values():
        assert post["media"] == MEDIA  # what the sandbox was given, alt texts included
        assert "cdn.example" not in post["content"]  # media, not links in the text
    assert dashboard.board.published_with_media["INSTAGRAM"] >= 1


async def test_media_urls_of_an_older_producer_still_publish_as_media(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(accounts=("BLUESKY",))
    await send_as_an_older_producer(t, t.material_event(COFFEE), ["https://cdn.example/e2e/old.jpg"])
    schedule = await t.schedule(["BLUESKY"])
    await t.landed()

    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "PUBLISHED"
    [post] = (await posts_of(t, dashboard, run)).values()
    assert post["media"] == [{"url": "https://cdn.example/e2e/old.jpg", "alt_text": None, "mime_type": None}]


async def test_instagram_is_left_out_of_a_text_only_post_and_not_charged(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("BLUESKY", "INSTAGRAM"))
    await t.send(t.material_event(COFFEE, media=[]))
    schedule = await t.schedule(["BLUESKY", "INSTAGRAM"])
    await t.landed()

    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "PUBLISHED"
    await dashboard.settle()
    [draft] = dashboard.events("PendingPostCreated", run=run)
    assert draft["data"]["platforms"] == ["BLUESKY"]
    assert draft["data"]["platforms_left_out"] == [{"platform": "INSTAGRAM", "reason": "MEDIA_REQUIRED"}]
    # GENERATE 1 + PUBLISH 1 for BLUESKY alone: Instagram is not charged.
    [debit] = dashboard.events("CreditsDebited", run=run)
    assert (debit["data"]["amount"], debit["data"]["balance_after"]) == (2, 298)
    published = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    assert [p["data"]["platform"] for p in published] == ["BLUESKY"]
    assert dashboard.events("PostPublishFailed", run=run) == []
    assert await t.credits() == 298


async def test_a_run_whose_every_platform_is_left_out_ends_so_with_no_debit(
    tenant: Callable[[], Tenant], dashboard: Dashboard
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("INSTAGRAM",))
    await t.send(t.material_event(COFFEE, media=[]))
    schedule = await t.schedule(["INSTAGRAM"])
    await t.landed()

    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "ALL_PLATFORMS_LEFT_OUT"
    await dashboard.settle()
    [skipped] = dashboard.events("ScheduleRunSkipped", run=run)
    assert skipped["data"]["reason"] == "ALL_PLATFORMS_LEFT_OUT"
    assert dashboard.events("PendingPostCreated", run=run) == []
    assert dashboard.events("CreditsDebited", run=run) == [] and dashboard.events("CreditsDebitRejected", run=run) == []
    assert len(dashboard.events("ScheduleRunCompleted", run=run)) == 1
    assert await t.credits() == 300
    assert uuid.UUID(run)
