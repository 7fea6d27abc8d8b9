"""The media part of every HTTP platform adapter (issue 18): fetch and check a post's files
before any upload, upload each once per account, and hand the platform's references to the
create call.

1. `_prepared_media`, once per publish, before any platform call: the count first (nothing is
   fetched for a post with too many files), then each file fetched through the egress guard
   (`media_fetch.py`) and measured, then the platform's limits (`domain/media.py`; Mastodon's
   from its instance). A file that breaks them fails MEDIA_REJECTED; nothing is uploaded.
2. `_upload_media`, in the retry loop before the create call: each file's upload is looked
   up in the account's remembered uploads (`adapters/media_uploads.py`) and reused, or made
   the platform's way (`_upload`) and remembered at once, so a retry, a lost answer to the
   post or a crash after the upload uploads nothing again. An upload that gets no answer is
   tried again (nothing was posted); a 4xx other than 401/429 fails MEDIA_REJECTED.
3. `_create` reads the references with `_attached`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from hopcast_publisher.adapters.media_uploads import MediaUploads, MemoryMediaUploads, UploadKey, upload_key
from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, PublishFailure
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.media_fetch import FetchedMedia, MediaFetcher
from hopcast_publisher.domain.media import FIXED_LIMITS, MediaLimits, media_refusal
from hopcast_shared.contract import PublishFailureReason

_NO_ORGANIZATION = uuid.UUID(int=0)


@dataclass(frozen=True)
class MediaOptions:
    """How an adapter fetches media and remembers uploads (shared by the adapters of a process)."""

    fetcher: MediaFetcher
    uploads: MediaUploads
    max_fetch_bytes: int = 100 * 1024 * 1024
    """No file is read past this, whatever a platform would take (PUBLISHER_MEDIA_MAX_BYTES)."""
    poll_interval_s: float = 1.0
    poll_timeout_s: float = 60.0
    """How long to wait for a platform to process an upload (Mastodon's 202, X's video)."""

    @classmethod
    def default(cls, egress: EgressPolicy) -> MediaOptions:
        return cls(MediaFetcher(egress), MemoryMediaUploads())

    async def close(self) -> None:
        await self.fetcher.close()


class UploadFailed(Exception):
    """A media upload got no clear answer (`response` None, or a 5xx: tried again, nothing was
    posted) or a refusal (a 4xx other than 401 and 429: the file fails MEDIA_REJECTED)."""

    def __init__(self, platform: str, response: httpx.Response | None = None, problem: str = "") -> None:
        self.response = response
        status = f" ({response.status_code})" if response is not None else ""
        super().__init__(f"{platform} did not take a media upload{status}{problem}")

    @property
    def refused(self) -> bool:
        status = self.response.status_code if self.response is not None else 0
        return 400 <= status < 500 and status not in (401, 429)


@dataclass(frozen=True)
class Uploaded:
    """A file of the post and the platform's reference to its upload."""

    fetched: FetchedMedia
    remote: dict[str, Any]


class AdapterMedia:
    """Mixed into HttpPlatformAdapter; a platform sets `uploads_media`, fills in `_upload` (and
    may change the limits, the upload key and how long an upload may be reused)."""

    platform: str
    media: MediaOptions
    _uploads: dict[str, dict[int, Uploaded]]
    uploads_media: bool = False
    """The adapter takes a post's media through this pipeline (fetch, check, upload once). An
    adapter without it handles `request.media` itself (a platform that fetches a public URL on
    its own, as the Graph API does), or has none to handle."""
    upload_ttl: timedelta = timedelta(hours=20)
    """How long an upload may be reused: within the time the platform keeps an unattached one."""

    async def media_limits(self, account: AccountCredentials) -> MediaLimits | None:
        """The platform's limits for this account (None: it takes no media)."""
        return FIXED_LIMITS.get(self.platform)

    def _upload_key(self, fetched: FetchedMedia, request: PostRequest) -> str:
        """What makes two uploads the same: the bytes (and what the platform binds to one)."""
        return upload_key(fetched.sha256)

    def _ttl(self, remote: dict[str, Any]) -> timedelta:
        return self.upload_ttl

    async def _upload(self, account: AccountCredentials, fetched: FetchedMedia, request: PostRequest) -> dict[str, Any]:
        """Upload one file the platform's way; its reference (stored as JSON). Raises
        UploadFailed for an answer that is not a success."""
        raise UploadFailed(self.platform, None, ": this adapter does not upload media")

    async def _prepared_media(self, account: AccountCredentials, request: PostRequest) -> list[FetchedMedia]:
        if not request.media:
            return []
        limits = await self.media_limits(account)
        total = len(request.media)
        if limits is None:
            raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, f"{self.platform} takes no media here")
        most = limits.max_images + limits.max_videos
        if total > most:
            detail = f"{total} files, over {limits.platform}{limits.where}'s limit of {most} a post"
            raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, detail)
        cap = min(limits.fetch_cap, self.media.max_fetch_bytes)
        fetched = [await self.media.fetcher.fetch(i, total, m, cap=cap) for i, m in enumerate(request.media, 1)]
        refusal = media_refusal(limits, [f.facts for f in fetched])
        if refusal is not None:
            raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, refusal)
        return fetched

    async def _upload_media(self, account: AccountCredentials, request: PostRequest, media: list[FetchedMedia]) -> None:
        done = self._uploads.setdefault(request.idempotency_key, {})
        for fetched in media:
            if fetched.index in done:
                continue
            key = UploadKey(
                account.organization_id or _NO_ORGANIZATION,
                account.social_account_id,
                self.platform,
                self._upload_key(fetched, request),
                fetched.sha256,
            )
            remote = await self.media.uploads.find(key)
            if remote is None:
                try:
                    made = await self._upload(account, fetched, request)
                except httpx.TransportError as exc:
                    raise UploadFailed(self.platform, None, f": {type(exc).__name__}") from None
                remote = await self.media.uploads.remember(key, made, self._ttl(made))
            done[fetched.index] = Uploaded(fetched, remote)

    asks_by_creating: bool = False
    """`_find_existing` cannot tell; the create call itself is the question (Mastodon's
    Idempotency-Key)."""

    async def _media_or_unknown(
        self, account: AccountCredentials, request: PostRequest, maybe_created: bool
    ) -> list[FetchedMedia]:
        """The post's media, fetched and checked. Where the platform is asked by posting again and
        a try may have posted already, a file that can no longer be read leaves the outcome
        unknown (OUTCOME_UNKNOWN, never posted again) rather than failing a post that may be out."""
        try:
            return await self._prepared_media(account, request)
        except PublishFailure as failure:
            if not (maybe_created and self.asks_by_creating):
                raise
            detail = (
                f"{self.platform} may have published it, and its media can no longer be read"
                f" ({failure.detail}): not posted again, check the profile"
            )
            raise PublishFailure(PublishFailureReason.OUTCOME_UNKNOWN, detail) from None

    def _attached(self, request: PostRequest) -> list[Uploaded]:
        """The post's uploads, in its order (empty for a post without media)."""
        done = self._uploads.get(request.idempotency_key, {})
        return [done[i] for i in sorted(done)]

    def _forget_uploads(self, request: PostRequest) -> None:
        self._uploads.pop(request.idempotency_key, None)
