"""A Mastodon instance's own text limit: `configuration.statuses.max_characters` and
`characters_reserved_per_url` of its `GET /api/v2/instance`, read through the adapter's guarded
client (the egress rules of every platform call) and kept per instance for a while.

An instance that does not answer, answers something else than a 200 with those numbers (an
older server without /api/v2/instance), or answers more than a megabyte is taken to have
Mastodon's defaults (500 characters, 23 per URL), remembered for a shorter time so it is asked
again soon. An instance whose address the egress guard refuses raises EgressRefused: no post
goes there either.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from hopcast_publisher.domain.media import MASTODON_DEFAULT, MediaLimits
from hopcast_shared.text_rules.mastodon import DEFAULT_LIMIT, URL_LENGTH, MastodonRule

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 1_000_000
# Sanity bounds: an instance may raise its limit (some allow 100,000), not to anything at all.
_MAX_CHARACTERS = range(1, 1_000_001)
_URL_LENGTH = range(0, 10_001)


@dataclass(frozen=True)
class InstanceLimits:
    max_characters: int = DEFAULT_LIMIT
    characters_reserved_per_url: int = URL_LENGTH
    read: bool = False
    """Read from the instance (False: Mastodon's defaults, the instance did not say)."""
    media: MediaLimits = field(default=MASTODON_DEFAULT)
    """Its `configuration.media_attachments` and `statuses.max_media_attachments`."""

    def rule(self) -> MastodonRule:
        return MastodonRule(self.max_characters, self.characters_reserved_per_url)


def limits_from(body: object) -> InstanceLimits | None:
    """The limits an /api/v2/instance answer gives, or None when it gives none that make sense."""
    config = body.get("configuration") if isinstance(body, dict) else None
    statuses = config.get("statuses") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(statuses, dict):
        return None
    chars, per_url = statuses.get("max_characters"), statuses.get("characters_reserved_per_url", URL_LENGTH)
    if isinstance(chars, bool) or not isinstance(chars, int) or chars not in _MAX_CHARACTERS:
        return None
    if isinstance(per_url, bool) or not isinstance(per_url, int) or per_url not in _URL_LENGTH:
        return None
    return InstanceLimits(chars, per_url, read=True, media=media_limits_from(config, statuses))


def _positive(value: object, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def media_limits_from(config: dict[str, object], statuses: dict[str, object]) -> MediaLimits:
    """The instance's media limits (docs.joinmastodon.org/entities/Instance:
    `configuration.media_attachments`), each one it does not give at Mastodon's default."""
    media = config.get("media_attachments")
    media = media if isinstance(media, dict) else {}
    d = MASTODON_DEFAULT
    types = media.get("supported_mime_types")
    names = frozenset(t for t in types if isinstance(t, str)) if isinstance(types, list) else None
    description = _positive(media.get("description_limit"), d.alt_characters)
    return replace(
        d,
        max_images=_positive(statuses.get("max_media_attachments"), d.max_images) or d.max_images,
        image_types=frozenset(t for t in names if t.startswith("image/")) if names is not None else d.image_types,
        video_types=frozenset(t for t in names if t.startswith("video/")) if names is not None else d.video_types,
        image_bytes=_positive(media.get("image_size_limit"), d.image_bytes),
        image_pixels=_positive(media.get("image_matrix_limit"), d.image_pixels),
        video_bytes=_positive(media.get("video_size_limit"), d.video_bytes),
        video_pixels=_positive(media.get("video_matrix_limit"), d.video_pixels),
        alt_characters=description,
    )


class InstanceLimitCache:
    """The limits of each instance (by its base URL), read at most once per `ttl_s` (or per
    `retry_s` after an instance did not say), one read at a time per instance."""

    def __init__(
        self, *, ttl_s: float = 3600.0, retry_s: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl_s = ttl_s
        self._retry_s = retry_s
        self._clock = clock
        self._known: dict[str, tuple[float, InstanceLimits]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def limits(self, client: httpx.AsyncClient, base_url: str) -> InstanceLimits:
        base = base_url.rstrip("/")
        async with self._locks.setdefault(base, asyncio.Lock()):
            known = self._known.get(base)
            if known is not None and known[0] > self._clock():
                return known[1]
            limits = await _read(client, base)
            self._known[base] = (self._clock() + (self._ttl_s if limits.read else self._retry_s), limits)
            return limits


async def _read(client: httpx.AsyncClient, base: str) -> InstanceLimits:
    try:
        async with client.stream("GET", f"{base}/api/v2/instance", headers={"Accept": "application/json"}) as r:
            if r.status_code != 200:
                log.warning("Mastodon instance %s answered %d to /api/v2/instance: assuming 500", base, r.status_code)
                return InstanceLimits()
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    log.warning("Mastodon instance %s: /api/v2/instance too large: assuming 500", base)
                    return InstanceLimits()
    except httpx.HTTPError as exc:
        log.warning("Mastodon instance %s: /api/v2/instance failed (%s): assuming 500", base, type(exc).__name__)
        return InstanceLimits()
    try:
        limits = limits_from(json.loads(body))
    except ValueError:
        limits = None
    if limits is None:
        log.warning("Mastodon instance %s: /api/v2/instance has no status limits: assuming 500", base)
        return InstanceLimits()
    return limits
