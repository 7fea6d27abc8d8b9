"""Media through content (issue 18), on the real database: a material's media and alt texts are
kept and go into its draft as media, never as links in the texts; older `media_urls` still work;
a platform that needs media is left out of a text-only draft with its reason, before billing
prices it; a run whose every platform would be left out is skipped ALL_PLATFORMS_LEFT_OUT.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PHOTO = {
    "url": "https://cdn.example/roastery/spring-menu.jpg",
    "alt_text": "Three cups of the spring menu on a wooden counter",
    "mime_type": "image/jpeg",
}
CLIP = {"url": "https://cdn.example/roastery/pour-over.mp4", "alt_text": "A pour-over, slowed down", "mime_type": None}


async def test_a_materials_media_and_alt_texts_go_into_its_draft_not_its_texts(h: Any, texts: Any) -> None:
    t = await h.tenant()
    material_id = await t.material(texts.a, media=[PHOTO, CLIP])
    stored = await h.db.pool.fetchval("SELECT media FROM materials WHERE id = $1", uuid.UUID(material_id))
    assert stored == [PHOTO, CLIP]

    data = h.drafted(await t.run(platforms=["BLUESKY", "INSTAGRAM"]))["data"]
    assert data["media"] == [PHOTO, CLIP] and "media_urls" not in data
    assert data["platforms"] == ["BLUESKY", "INSTAGRAM"] and data["platforms_left_out"] == []
    for text in data["texts"].values():
        assert "cdn.example" not in text
    row = await h.db.pool.fetchrow(
        "SELECT media, platforms_left_out FROM pending_posts WHERE id = $1", uuid.UUID(data["pending_post_id"])
    )
    assert row["media"] == [PHOTO, CLIP] and row["platforms_left_out"] == []


async def test_media_urls_alone_are_media_without_alt_text(h: Any, texts: Any) -> None:
    t = await h.tenant()
    submitted = t.event(
        "MaterialSubmitted", material_id=str(uuid.uuid4()), brand_profile_id=t.brand, body=texts.a, title=None
    )
    # As an older producer writes it: media_urls, no media.
    document = json.loads(submitted.to_json())
    del document["data"]["media"]
    document["data"]["media_urls"] = ["https://cdn.example/old/latte.png"]
    assert await h.send(json.dumps(document).encode()) == "handled"

    drafted = h.drafted(await t.run(platforms=["INSTAGRAM", "MASTODON"]))["data"]
    assert drafted["media"] == [{"url": "https://cdn.example/old/latte.png", "alt_text": None, "mime_type": None}]
    assert drafted["platforms"] == ["INSTAGRAM", "MASTODON"]
    assert "latte.png" not in drafted["texts"]["MASTODON"]


async def test_instagram_is_left_out_of_a_text_only_draft_with_its_reason(h: Any, texts: Any) -> None:
    t = await h.tenant()
    await t.material(texts.a, media=[])
    data = h.drafted(await t.run(platforms=["INSTAGRAM", "BLUESKY", "YOUTUBE"]))["data"]
    # Only BLUESKY is drafted for (and priced: billing charges for `platforms`).
    assert data["platforms"] == ["BLUESKY"] and set(data["texts"]) == {"BLUESKY"}
    assert data["platforms_left_out"] == [
        {"platform": "INSTAGRAM", "reason": "MEDIA_REQUIRED"},
        {"platform": "YOUTUBE", "reason": "VIDEO_REQUIRED"},
    ]
    row = await h.db.pool.fetchrow(
        "SELECT platforms, platforms_left_out FROM pending_posts WHERE id = $1", uuid.UUID(data["pending_post_id"])
    )
    assert row["platforms"] == ["BLUESKY"] and row["platforms_left_out"] == data["platforms_left_out"]


async def test_youtube_takes_a_video_and_leaves_out_a_draft_of_images(h: Any, texts: Any) -> None:
    t = await h.tenant()
    await t.material(texts.a, media=[PHOTO])
    data = h.drafted(await t.run(platforms=["YOUTUBE", "INSTAGRAM"]))["data"]
    assert data["platforms"] == ["INSTAGRAM"]
    assert data["platforms_left_out"] == [{"platform": "YOUTUBE", "reason": "VIDEO_REQUIRED"}]

    other = await h.tenant()
    await other.material(texts.b, media=[CLIP])  # no type given: the URL's .mp4 says video
    assert h.drafted(await other.run(platforms=["YOUTUBE"]))["data"]["platforms"] == ["YOUTUBE"]


async def test_a_material_that_suits_no_platform_is_passed_over_for_one_that_does(h: Any, texts: Any) -> None:
    t = await h.tenant()
    await t.material(texts.a, media=[])  # round robin would pick the older one first
    with_photo = await t.material(texts.b, media=[PHOTO])
    data = h.drafted(await t.run(platforms=["INSTAGRAM"]))["data"]
    assert data["material_id"] == with_photo and data["platforms"] == ["INSTAGRAM"]


async def test_a_run_whose_every_platform_is_left_out_is_skipped_with_no_draft(h: Any, texts: Any) -> None:
    t = await h.tenant()
    text_only = await t.material(texts.a, media=[])
    h.skipped(await t.run(platforms=["INSTAGRAM", "TIKTOK"]), "ALL_PLATFORMS_LEFT_OUT", "ALL_PLATFORMS_LEFT_OUT")
    assert (
        await h.db.pool.fetchval("SELECT count(*) FROM pending_posts WHERE material_id = $1", uuid.UUID(text_only)) == 0
    )
    # The material is still there for a run it suits.
    assert h.drafted(await t.run(platforms=["MASTODON"]))["data"]["material_id"] == text_only


async def test_a_material_row_from_before_media_is_read_with_its_urls(h: Any, texts: Any) -> None:
    t = await h.tenant()
    material_id = await t.material(texts.a, media=[])
    # As a row written before migration 0003 looks: its URLs in media_urls alone.
    await h.db.pool.execute(
        "UPDATE materials SET media_urls = $2, media = '[]'::jsonb WHERE id = $1",
        uuid.UUID(material_id),
        ["https://cdn.example/old/menu.jpg"],
    )
    data = h.drafted(await t.run(platforms=["INSTAGRAM"]))["data"]
    assert data["material_id"] == material_id and data["platforms"] == ["INSTAGRAM"]
    assert data["media"] == [{"url": "https://cdn.example/old/menu.jpg", "alt_text": None, "mime_type": None}]
