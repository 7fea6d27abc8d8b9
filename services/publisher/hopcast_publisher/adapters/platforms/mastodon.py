"""Mastodon: POST /api/v1/statuses on the account's instance.

Idempotency: Mastodon's own `Idempotency-Key` header (the same key within an hour returns
the status already created instead of a new one), sent with every try; "does it exist?"
is that same call, so after an unknown outcome the retry is the question. Rate limits:
X-RateLimit-Remaining / X-RateLimit-Reset (an ISO 8601 time). Tokens: refreshed at
/oauth/token with the app's client id and secret when the instance issued a refresh token.
Text: checked against the instance's own limit (`mastodon_instance.py`) before any call.

Media (`media.py`; docs.joinmastodon.org/methods/media): each file is checked against the
instance's own `configuration.media_attachments` limits, then uploaded with POST /api/v2/media
(multipart `file` and `description`, the alt text). The instance answers 200 with the
attachment, or 202 with `url` null while it processes the file: GET /api/v1/media/:id is then
asked until it answers 200 with `url` set (206 meanwhile). The status carries `media_ids`. A
Mastodon attachment belongs to one status once posted, so an upload is reused by the retries of
its own post only (its key holds the post's idempotency key and the description).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from hopcast_publisher.adapters.media_uploads import upload_key
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostRequest,
    Published,
    PublishFailure,
)
from hopcast_publisher.adapters.platforms.http import (
    AdapterOptions,
    bearer,
    egress_refusals,
    json_or_empty,
    now,
)
from hopcast_publisher.adapters.platforms.mastodon_instance import InstanceLimitCache
from hopcast_publisher.adapters.platforms.media import UploadFailed
from hopcast_publisher.adapters.platforms.media_fetch import FetchedMedia
from hopcast_publisher.adapters.platforms.oauth import OAuthPlatformAdapter
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, mastodon_rate_limit
from hopcast_publisher.domain.media import MASTODON_DEFAULT, MediaLimits
from hopcast_publisher.domain.publishing import text_refusal
from hopcast_shared.contract import PublishFailureReason


class MastodonAdapter(OAuthPlatformAdapter):
    platform = "MASTODON"
    uploads_media = True
    oauth_name = "Mastodon"
    asks_by_creating = True

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        options: AdapterOptions | None = None,
        instances: InstanceLimitCache | None = None,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, options=options)
        self.instances = instances or InstanceLimitCache()

    async def text_refusal(self, platform: str, text: str, *, api_base_url: str | None) -> str | None:
        """By the account's instance's own limit (its /api/v2/instance, cached), not the default
        500 content drafts for: a longer text is refused with no call when the instance's limit is
        smaller, and taken when it is larger."""
        if not api_base_url:
            return await super().text_refusal(platform, text, api_base_url=api_base_url)
        with egress_refusals(self.platform):
            limits = await self.instances.limits(self.client, api_base_url)
        host = urlsplit(api_base_url).hostname or "the instance"
        where = f" on {host} (its limit {limits.max_characters})" if limits.read else ""
        return text_refusal(platform, text, limits.rule(), where)

    async def media_limits(self, account: AccountCredentials) -> MediaLimits | None:
        """The account's instance's own media limits (its /api/v2/instance, cached)."""
        if not account.api_base_url:
            return MASTODON_DEFAULT
        limits = await self.instances.limits(self.client, account.api_base_url)
        host = urlsplit(account.api_base_url).hostname or "the instance"
        return replace(limits.media, where=f" on {host}") if limits.read else limits.media

    def _upload_key(self, fetched: FetchedMedia, request: PostRequest) -> str:
        return upload_key(fetched.sha256, fetched.media.alt_text, request.idempotency_key)

    async def _upload(self, account: AccountCredentials, fetched: FetchedMedia, request: PostRequest) -> dict[str, Any]:
        base, auth = self._base(account), bearer(account.access_token)
        name = f"media-{fetched.index}.{fetched.facts.mime_type.split('/')[-1]}"
        form = {"description": fetched.media.alt_text} if fetched.media.alt_text else {}
        response = await self.client.post(
            f"{base}/api/v2/media",
            headers=auth,
            files={"file": (name, fetched.data, fetched.facts.mime_type)},
            data=form,
        )
        body = json_or_empty(response)
        media_id = body.get("id")
        if response.status_code not in (200, 202) or not isinstance(media_id, str | int):
            raise UploadFailed(self.platform, response)
        # 202: processed in the background; the status may only carry it once `url` is set.
        deadline = time.monotonic() + self.media.poll_timeout_s
        while not body.get("url"):
            if time.monotonic() > deadline:
                raise UploadFailed(self.platform, None, f": media {fetched.index} still processing")
            await asyncio.sleep(self.media.poll_interval_s)
            polled = await self.client.get(f"{base}/api/v1/media/{media_id}", headers=auth)
            if polled.status_code not in (200, 206):
                raise UploadFailed(self.platform, polled)
            body = json_or_empty(polled) if polled.status_code == 200 else body
        return {"id": str(media_id)}

    def _base(self, account: AccountCredentials) -> str:
        if not account.api_base_url:
            raise PublishFailure(PublishFailureReason.PLATFORM_REJECTED, "Mastodon account without an instance URL")
        return account.api_base_url.rstrip("/")

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        return await self.client.post(
            f"{self._base(account)}/api/v1/statuses",
            headers={**bearer(account.access_token), "Idempotency-Key": request.idempotency_key},
            json={"status": request.text, "visibility": "public"}
            | ({"media_ids": [u.remote["id"] for u in uploads]} if (uploads := self._attached(request)) else {}),
        )

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        body = json_or_empty(response)
        status_id = str(body.get("id") or "")
        if not status_id:
            raise PublishFailure(PublishFailureReason.PLATFORM_REJECTED, "Mastodon answered without a status id")
        url = body.get("url") or body.get("uri") or f"{self._base(account)}/statuses/{status_id}"
        return Published(status_id, str(url), _created_at(body.get("created_at")))

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        # The Idempotency-Key makes the create call itself the question: Mastodon answers
        # with the status made by an earlier try instead of making a second one.
        return None

    def _error_code(self, body: dict[str, object]) -> object:
        # Mastodon has no codes: `error` is a short message ("Validation failed: ..."), kept
        # only once scrubbed and shortened.
        return body.get("error")

    def _rate_limit(self, response: httpx.Response) -> RateLimit | None:
        return mastodon_rate_limit(response.headers)

    def _token_url(self, account: AccountCredentials) -> str:
        return f"{self._base(account)}/oauth/token"


def _created_at(value: object) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return now()
