"""Mastodon: POST /api/v1/statuses on the account's instance.

Idempotency: Mastodon's own `Idempotency-Key` header (the same key within an hour returns
the status already created instead of a new one), sent with every try; "does it exist?"
is that same call, so after an unknown outcome the retry is the question. Rate limits:
X-RateLimit-Remaining / X-RateLimit-Reset (an ISO 8601 time). Tokens: refreshed at
/oauth/token with the app's client id and secret when the instance issued a refresh token.
Text: checked against the instance's own limit (`mastodon_instance.py`) before any call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

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
from hopcast_publisher.adapters.platforms.oauth import OAuthPlatformAdapter
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, mastodon_rate_limit
from hopcast_publisher.domain.publishing import text_refusal
from hopcast_shared.contract import PublishFailureReason


class MastodonAdapter(OAuthPlatformAdapter):
    platform = "MASTODON"
    oauth_name = "Mastodon"

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

    def _base(self, account: AccountCredentials) -> str:
        if not account.api_base_url:
            raise PublishFailure(PublishFailureReason.PLATFORM_REJECTED, "Mastodon account without an instance URL")
        return account.api_base_url.rstrip("/")

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        return await self.client.post(
            f"{self._base(account)}/api/v1/statuses",
            headers={**bearer(account.access_token), "Idempotency-Key": request.idempotency_key},
            json={"status": request.text, "visibility": "public"},
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
