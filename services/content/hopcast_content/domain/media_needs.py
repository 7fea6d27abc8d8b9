"""Which of a run's platforms a draft can go to, by its media, decided before the debit
(issue 18): a platform that posts only an image or a video is left out, with why, when the
draft has none, so it is never charged for nor tried."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hopcast_content.domain.drafting import MediaRef
from hopcast_shared.contract import LeftOutReason, Platform

# Platforms that post nothing without media (their APIs publish a media object: Instagram an
# image, carousel or reel; TikTok a video or photos; YouTube a video).
NEEDS: dict[Platform, LeftOutReason] = {
    Platform.INSTAGRAM: LeftOutReason.MEDIA_REQUIRED,
    Platform.TIKTOK: LeftOutReason.MEDIA_REQUIRED,
    Platform.YOUTUBE: LeftOutReason.VIDEO_REQUIRED,
}
_VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".m4v")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic")


def kind_of(media: MediaRef) -> str | None:
    """`image`, `video`, or None when neither its type nor its URL tells."""
    if media.mime_type:
        major = media.mime_type.split("/", 1)[0].lower()
        return major if major in ("image", "video") else None
    path = media.url.split("?", 1)[0].split("#", 1)[0].lower()
    if path.endswith(_VIDEO_EXTENSIONS):
        return "video"
    if path.endswith(_IMAGE_EXTENSIONS):
        return "image"
    return None


def _satisfied(need: LeftOutReason, media: Sequence[MediaRef]) -> bool:
    kinds = [kind_of(m) for m in media]
    if need is LeftOutReason.VIDEO_REQUIRED:
        # A file whose kind cannot be told may be a video: the publisher checks the file itself.
        return any(k in ("video", None) for k in kinds)
    return bool(kinds)


@dataclass(frozen=True)
class PlatformsFor:
    """The run's platforms split: those the draft goes to, and those left out with why."""

    included: tuple[Platform, ...]
    left_out: tuple[tuple[Platform, LeftOutReason], ...]


def platforms_for(platforms: Sequence[Platform], media: Sequence[MediaRef]) -> PlatformsFor:
    included: list[Platform] = []
    left_out: list[tuple[Platform, LeftOutReason]] = []
    for platform in platforms:
        need = NEEDS.get(platform)
        if need is None or _satisfied(need, media):
            included.append(platform)
        else:
            left_out.append((platform, need))
    return PlatformsFor(tuple(included), tuple(left_out))
