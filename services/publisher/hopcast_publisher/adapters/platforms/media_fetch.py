"""Fetching a post's media safely, before anything is uploaded.

Every file is read through the egress guard (`platform_client`: https, public addresses only,
judged on the addresses connected to), with its own client (no account's token or cookie ever
goes to a media host), without proxies, following at most three redirects and only on the
same host. The body is streamed and cut at a byte cap (the platform's largest limit plus one
byte, so "one over" is seen without reading a huge file), its real type sniffed from its first
bytes (`domain/media.sniff_type`; the server's Content-Type and the draft's mime_type are not
trusted), and an image's dimensions read from its header with Pillow (nothing is decoded, so a
decompression bomb costs nothing; EXIF orientation is applied to width and height).

A file that cannot be what it claims (not an image or video, unreadable, a server refusal)
fails MEDIA_REJECTED; a media host the guard refuses fails EGRESS_REFUSED; a host that does not
answer, after a second try, RETRIES_EXHAUSTED. Details name the file by its place in the post
and its host, never its URL (a query may hold a signature).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass, field

import httpx
from PIL import Image, UnidentifiedImageError

from hopcast_publisher.adapters.platforms.base import PostMedia, PublishFailure
from hopcast_publisher.adapters.platforms.egress import EgressPolicy, EgressRefused, platform_client
from hopcast_publisher.domain.media import MediaFacts, kind_of, sniff_type
from hopcast_shared.contract import PublishFailureReason

log = logging.getLogger(__name__)

_PIL_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}


@dataclass(frozen=True)
class FetchedMedia:
    """One file of a post, fetched and measured."""

    index: int
    """1-based place in the post."""
    media: PostMedia
    data: bytes = field(repr=False)
    facts: MediaFacts
    sha256: str
    """Hex digest of the bytes: what the upload is remembered by."""


def _rejected(index: int, total: int, why: str) -> PublishFailure:
    return PublishFailure(PublishFailureReason.MEDIA_REJECTED, f"media {index} of {total}: {why}")


def image_size(data: bytes) -> tuple[str, int, int] | None:
    """An image's type (by Pillow), width and height as shown (EXIF orientation applied), from
    its header alone; None when Pillow cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = _PIL_FORMATS.get(image.format or "")
                width, height = image.size
                try:
                    orientation = image.getexif().get(0x0112)
                except Exception:  # a broken EXIF block: the stored orientation then
                    orientation = None
    except Image.DecompressionBombError as exc:
        # Over Pillow's own pixel ceiling: far past any platform's; report it as such.
        raise ValueError("more pixels than any platform takes") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    if kind is None:
        return None
    if orientation in _ROTATED:
        width, height = height, width
    return kind, width, height


def measure(index: int, total: int, media: PostMedia, data: bytes) -> MediaFacts:
    """The facts of a fetched file; MEDIA_REJECTED when it is not a readable image or video."""
    sniffed = sniff_type(data[:16])
    if sniffed is None:
        raise _rejected(index, total, "not an image or video of a known type (by its first bytes)")
    declared = _ALIASES.get((media.mime_type or "").lower(), (media.mime_type or "").lower())
    if declared and kind_of(declared) is not None and kind_of(declared) != kind_of(sniffed):
        raise _rejected(index, total, f"declared {declared}, but its bytes are {sniffed}")
    if kind_of(sniffed) != "image":
        return MediaFacts(sniffed, len(data), alt_text=media.alt_text)
    try:
        read = image_size(data)
    except ValueError as exc:
        raise _rejected(index, total, str(exc)) from None
    if read is None or read[0] != sniffed:
        raise _rejected(index, total, f"its bytes start as {sniffed} but do not read as one")
    return MediaFacts(sniffed, len(data), read[1], read[2], media.alt_text)


class MediaFetcher:
    """Reads media files within the egress guard (one client for every platform's adapters)."""

    def __init__(
        self,
        egress: EgressPolicy,
        *,
        timeout_s: float = 15.0,
        max_redirects: int = 3,
        retry_delay_s: float = 0.5,
        user_agent: str = "hopcast-publisher/0.1 (media)",
    ) -> None:
        self.client = platform_client(
            "MEDIA", egress, connect_timeout_s=timeout_s, read_timeout_s=timeout_s, user_agent=user_agent
        )
        self._max_redirects = max_redirects
        self._retry_delay_s = retry_delay_s
        self.fetched = 0
        """Files read (for tests: a refusal before the fetch reads nothing)."""

    async def fetch(self, index: int, total: int, media: PostMedia, *, cap: int) -> FetchedMedia:
        """The file's bytes (at most `cap`; more is MEDIA_REJECTED naming the cap) and facts."""
        for attempt in (1, 2):
            try:
                data = await self._read(index, total, media.url, cap)
                break
            except EgressRefused as exc:
                raise PublishFailure(
                    PublishFailureReason.EGRESS_REFUSED, f"media {index} of {total}: {exc.detail}"
                ) from None
            except httpx.InvalidURL:
                raise _rejected(index, total, "not a valid URL") from None
            except (httpx.TransportError, _Unavailable) as exc:
                if attempt == 2:
                    host = httpx.URL(media.url).host
                    raise PublishFailure(
                        PublishFailureReason.RETRIES_EXHAUSTED,
                        f"media {index} of {total}: could not fetch it from {host} ({_name(exc)})",
                    ) from None
                await asyncio.sleep(self._retry_delay_s)
        self.fetched += 1
        facts = measure(index, total, media, data)
        return FetchedMedia(index, media, data, facts, hashlib.sha256(data).hexdigest())

    async def _read(self, index: int, total: int, url: str, cap: int) -> bytes:
        target = httpx.URL(url)
        for _ in range(self._max_redirects + 1):
            async with self.client.stream("GET", target, headers={"Accept": "image/*, video/*"}) as response:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location", "")
                    following = target.join(location)
                    if following.host != target.host or following.scheme != target.scheme:
                        raise _rejected(index, total, f"{target.host} redirected it to another host")
                    target = following
                    continue
                if response.status_code >= 500 or response.status_code == 429:
                    raise _Unavailable(f"{response.status_code}")
                if response.status_code != 200:
                    raise _rejected(index, total, f"{target.host} answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise _rejected(index, total, f"more than {cap:,} bytes, over the limit of {cap:,}")
                return bytes(body)
        raise _rejected(index, total, f"more than {self._max_redirects} redirects")

    async def close(self) -> None:
        await self.client.aclose()


class _Unavailable(Exception):
    """The media host answered 5xx or 429: worth a second try."""


def _name(exc: Exception) -> str:
    return f"answered {exc}" if isinstance(exc, _Unavailable) else type(exc).__name__
