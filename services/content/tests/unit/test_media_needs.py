"""Which of a run's platforms a draft's media let it go to (issue 18), decided before the debit."""

from __future__ import annotations

import pytest

from hopcast_content.domain.drafting import MediaRef
from hopcast_content.domain.media_needs import kind_of, platforms_for
from hopcast_shared.contract import LeftOutReason, Platform

IMAGE = MediaRef("https://cdn.example/a.jpg", "A cup", "image/jpeg")
VIDEO = MediaRef("https://cdn.example/pour.webm?size=large")
UNKNOWN = MediaRef("https://cdn.example/render?id=7")


@pytest.mark.parametrize(
    ("media", "kind"),
    [
        (IMAGE, "image"),
        (VIDEO, "video"),
        (UNKNOWN, None),
        (MediaRef("https://cdn.example/a.PNG#top"), "image"),
        (MediaRef("https://cdn.example/clip", mime_type="video/mp4"), "video"),
        (MediaRef("https://cdn.example/a.jpg", mime_type="application/pdf"), None),  # the type wins
    ],
)
def test_the_kind_of_a_media_is_its_type_else_its_urls_ending(media: MediaRef, kind: str | None) -> None:
    assert kind_of(media) == kind


def test_a_text_only_draft_leaves_out_the_platforms_that_post_only_media() -> None:
    split = platforms_for([Platform.INSTAGRAM, Platform.BLUESKY, Platform.YOUTUBE, Platform.TIKTOK], [])
    assert split.included == (Platform.BLUESKY,)
    assert split.left_out == (
        (Platform.INSTAGRAM, LeftOutReason.MEDIA_REQUIRED),
        (Platform.YOUTUBE, LeftOutReason.VIDEO_REQUIRED),
        (Platform.TIKTOK, LeftOutReason.MEDIA_REQUIRED),
    )


def test_an_image_serves_instagram_but_not_youtube_and_a_video_serves_both() -> None:
    images = platforms_for([Platform.YOUTUBE, Platform.INSTAGRAM], [IMAGE])
    assert images.included == (Platform.INSTAGRAM,)
    assert images.left_out == ((Platform.YOUTUBE, LeftOutReason.VIDEO_REQUIRED),)
    assert platforms_for([Platform.YOUTUBE, Platform.INSTAGRAM], [IMAGE, VIDEO]).left_out == ()


def test_a_file_of_unknown_kind_may_be_the_video_youtube_needs() -> None:
    # The publisher checks the file itself; content does not refuse what it cannot judge.
    assert platforms_for([Platform.YOUTUBE], [UNKNOWN]).included == (Platform.YOUTUBE,)


def test_every_platform_without_a_need_is_kept_in_order() -> None:
    platforms = [Platform.MASTODON, Platform.TWITTER, Platform.LINKEDIN, Platform.FACEBOOK, Platform.REDDIT]
    assert platforms_for(platforms, []).included == tuple(platforms)
