"""What a post's media may be on each platform, judged before any upload: the real type of a
file from its first bytes (never the server's Content-Type or the draft's mime_type alone),
and each platform's documented limits on count, type, size, dimensions and alt text.

Pure: the fetcher (`adapters/platforms/media_fetch.py`) measures, this module decides. A
refusal is a value, the detail of a MEDIA_REJECTED failure: which file (1-based, in the
post's order), which limit, and the measured value.

The limits, as the platforms document them:

- Bluesky: `app.bsky.embed.images` takes at most 4 images, each a blob of `image/*` of at
  most 1,000,000 bytes (the lexicon's `maxSize`), with `alt` and `aspectRatio`
  (github.com/bluesky-social/atproto lexicons/app/bsky/embed/images.json). Video goes through
  a separate video service (`app.bsky.embed.video`), not published here.
- Mastodon: the instance's own `configuration.media_attachments` (supported_mime_types,
  image_size_limit, image_matrix_limit, video_size_limit, video_matrix_limit) and
  `configuration.statuses.max_media_attachments` of GET /api/v2/instance
  (docs.joinmastodon.org/entities/Instance); Mastodon's defaults when it does not say. A
  description of at most 1,500 characters (MediaAttachment::MAX_DESCRIPTION_LENGTH).
- X: up to 4 images, or 1 video or animated GIF; images (JPEG, PNG, WEBP) up to 5 MB, GIF
  up to 15 MB, MP4 video up to 512 MB; images 4x4 to 8192x8192; alt text up to 1,000
  characters (docs.x.com media best practices, /2/media/metadata).
- LinkedIn (Images API): JPG, GIF or PNG, at most 36,152,320 pixels; one image
  (`content.media`) or 2 to 20 (`content.multiImage`); alt text up to 4,086 characters
  (learn.microsoft.com/linkedin/marketing/community-management/shares/images-api). Video
  needs the Videos API, not published here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["image", "video"]

_KINDS: dict[str, Kind] = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/gif": "image",
    "image/webp": "image",
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/webm": "video",
}


def sniff_type(head: bytes) -> str | None:
    """The media type a file's first bytes show (their magic numbers), or None when they are
    none of the types any platform here takes. 16 bytes are enough."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"  # before ftyp: a WebM's bytes 4 to 8 may well spell it
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    return None


def kind_of(mime_type: str) -> Kind | None:
    return _KINDS.get(mime_type)


@dataclass(frozen=True)
class MediaFacts:
    """One fetched file as measured: its sniffed type, size, and (images) dimensions."""

    mime_type: str
    size: int
    width: int | None = None
    height: int | None = None
    alt_text: str | None = None

    @property
    def kind(self) -> Kind | None:
        return kind_of(self.mime_type)


@dataclass(frozen=True)
class MediaLimits:
    """One platform's limits on a post's media (None: no such limit)."""

    platform: str
    max_images: int
    max_videos: int = 0
    image_types: frozenset[str] = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
    video_types: frozenset[str] = frozenset()
    image_bytes: int | None = None
    type_bytes: dict[str, int] = field(default_factory=dict)
    """A per-type size limit that replaces `image_bytes` (X's GIFs)."""
    video_bytes: int | None = None
    image_pixels: int | None = None
    video_pixels: int | None = None
    min_side: int | None = None
    max_side: int | None = None
    alt_characters: int | None = None
    mixed: bool = False
    """Images and a video in one post."""
    where: str = ""
    """Where the limits come from, for the detail (" on m.example")."""

    @property
    def fetch_cap(self) -> int:
        """The most bytes worth fetching of any one file: anything longer is refused anyway."""
        sizes = [s for s in (self.image_bytes, self.video_bytes, *self.type_bytes.values()) if s is not None]
        return max(sizes, default=0)


BLUESKY = MediaLimits("BLUESKY", max_images=4, image_bytes=1_000_000)
TWITTER = MediaLimits(
    "TWITTER",
    max_images=4,
    max_videos=1,
    video_types=frozenset({"video/mp4", "video/quicktime"}),
    image_bytes=5 * 1024 * 1024,
    type_bytes={"image/gif": 15 * 1024 * 1024},
    video_bytes=512 * 1024 * 1024,
    min_side=4,
    max_side=8192,
    alt_characters=1000,
)
LINKEDIN = MediaLimits(
    "LINKEDIN",
    max_images=20,
    image_types=frozenset({"image/jpeg", "image/png", "image/gif"}),
    image_bytes=36_152_320 * 4,  # no byte limit documented; the pixel limit binds first
    image_pixels=36_152_320,
    alt_characters=4086,
)
MASTODON_DEFAULT = MediaLimits(
    "MASTODON",
    max_images=4,
    max_videos=1,
    video_types=frozenset({"video/mp4", "video/quicktime", "video/webm"}),
    image_bytes=16 * 1024 * 1024,
    video_bytes=99 * 1024 * 1024,
    image_pixels=33_177_600,
    video_pixels=8_294_400,
    alt_characters=1500,
)

FIXED_LIMITS = {limits.platform: limits for limits in (BLUESKY, TWITTER, LINKEDIN)}


def _number(value: int) -> str:
    return f"{value:,}"


def media_refusal(limits: MediaLimits, files: Sequence[MediaFacts]) -> str | None:
    """Why these files may not go with one post on `limits.platform` (None when they may): the
    first limit broken, naming the file (1-based), the limit and the measured value."""
    platform = f"{limits.platform}{limits.where}"
    images = sum(1 for f in files if f.kind == "image")
    videos = sum(1 for f in files if f.kind == "video")
    for index, facts in enumerate(files, 1):
        refusal = _file_refusal(limits, facts)
        if refusal is not None:
            return f"media {index} of {len(files)}: {refusal} on {platform}"
    if videos > limits.max_videos:
        return f"{videos} videos, over {platform}'s limit of {limits.max_videos} a post"
    if images > limits.max_images:
        return f"{images} images, over {platform}'s limit of {limits.max_images} a post"
    if images and videos and not limits.mixed:
        return f"{images} images and {videos} video in one post: {platform} takes one or the other"
    gifs = sum(1 for f in files if f.mime_type == "image/gif")
    if limits.platform == "TWITTER" and gifs and len(files) > 1:
        return f"an animated GIF with {len(files) - 1} other files: {platform} takes a GIF alone"
    return None


def _file_refusal(limits: MediaLimits, facts: MediaFacts) -> str | None:
    kind = facts.kind
    if kind == "image":
        if facts.mime_type not in limits.image_types:
            return f"type {facts.mime_type} is not taken (images: {', '.join(sorted(limits.image_types))})"
        max_bytes = limits.type_bytes.get(facts.mime_type, limits.image_bytes)
        max_pixels = limits.image_pixels
    elif kind == "video":
        if facts.mime_type not in limits.video_types:
            taken = ", ".join(sorted(limits.video_types)) or "none"
            return f"type {facts.mime_type} is not taken (videos: {taken})"
        max_bytes, max_pixels = limits.video_bytes, limits.video_pixels
    else:
        return f"type {facts.mime_type} is not an image or video type"
    if max_bytes is not None and facts.size > max_bytes:
        return f"{_number(facts.size)} bytes, over the limit of {_number(max_bytes)}"
    if facts.width is not None and facts.height is not None:
        pixels = facts.width * facts.height
        if max_pixels is not None and pixels > max_pixels:
            size = f"{facts.width}x{facts.height}"
            return f"{size} is {_number(pixels)} pixels, over the limit of {_number(max_pixels)}"
        if limits.max_side is not None and max(facts.width, facts.height) > limits.max_side:
            return f"{facts.width}x{facts.height}, a side over the limit of {limits.max_side}"
        if limits.min_side is not None and min(facts.width, facts.height) < limits.min_side:
            return f"{facts.width}x{facts.height}, a side under the minimum of {limits.min_side}"
    alt = facts.alt_text or ""
    if limits.alt_characters is not None and len(alt) > limits.alt_characters:
        return f"alt text of {_number(len(alt))} characters, over the limit of {_number(limits.alt_characters)}"
    return None
