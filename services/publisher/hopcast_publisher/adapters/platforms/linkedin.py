"""LinkedIn: POST /rest/posts (the Posts API, versioned by the LinkedIn-Version header).

The post id comes back in the `x-restli-id` header. Every call carries `LinkedIn-Version`
(YYYYMM); a retired one is answered 426 NONEXISTENT_VERSION and fails API_VERSION_RETIRED
(versions.py). LinkedIn has no idempotency key: "does it exist?" reads the author's latest
posts (GET /rest/posts?q=author) and looks for the same commentary. That read needs
r_member_social for a member's own posts, a restricted permission a personal account's app
seldom has (w_member_social, which posts, does not read): LinkedIn refuses it (403), and a
post that may have been published is then reported OUTCOME_UNKNOWN, neither retried nor
posted again. An organization's posts are read with r_organization_social, which comes with
posting as the organization. Commentary is "little text": reserved characters are escaped.
Rate limits: 429 only, no headers; LinkedIn's limits are per day and reset at midnight UTC, so
429s that outlast the tries defer the post until then (DAILY_CAP). Tokens: refreshed at
/oauth/v2/accessToken with the app's client id and secret.

Images (`media.py`; learn.microsoft.com/linkedin/marketing/community-management/shares/images-api):
POST /rest/images?action=initializeUpload with the author as `owner` answers an `uploadUrl`
and the image URN; the bytes are PUT to that URL (with the bearer token); GET /rest/images/{urn}
is asked until its `status` is AVAILABLE (PROCESSING meanwhile; PROCESSING_FAILED is
MEDIA_REJECTED). The post's `content` is `media` {id, altText} for one image, `multiImage`
{images: [{id, altText}]} for 2 to 20 (multi-image-post-api). The upload URL is on another
LinkedIn host than the API: with PUBLISHER_EGRESS_ALLOWLIST_LINKEDIN set, list it there too.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import quote

import httpx

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostRequest,
    Published,
    PublishFailure,
)
from hopcast_publisher.adapters.platforms.http import (
    AdapterOptions,
    LookupFailed,
    bearer,
    items,
    json_or_empty,
    now,
)
from hopcast_publisher.adapters.platforms.media import Uploaded, UploadFailed
from hopcast_publisher.adapters.platforms.media_fetch import FetchedMedia
from hopcast_publisher.adapters.platforms.oauth import OAuthPlatformAdapter
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, next_utc_midnight
from hopcast_publisher.adapters.platforms.versions import linkedin_version_retired
from hopcast_publisher.adapters.platforms.x import same_text
from hopcast_publisher.domain.api_versions import DEFAULT_LINKEDIN_VERSION, linkedin_released
from hopcast_shared.contract import DeferralReason, PublishFailureReason

_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")


def post_content(uploads: list[Uploaded]) -> dict[str, object]:
    """The post's `content` for its images: `media` for one, `multiImage` for more."""
    images = [
        {"id": u.remote["id"]} | ({"altText": u.fetched.media.alt_text} if u.fetched.media.alt_text else {})
        for u in uploads
    ]
    return {"media": images[0]} if len(images) == 1 else {"multiImage": {"images": images}}


def little_text(text: str) -> str:
    """Escape the characters LinkedIn's commentary format reserves."""
    return _RESERVED.sub(r"\\\1", text)


class LinkedInAdapter(OAuthPlatformAdapter):
    platform = "LINKEDIN"
    uploads_media = True
    oauth_name = "LinkedIn"
    version_setting = "PUBLISHER_LINKEDIN_VERSION"

    def __init__(
        self,
        *,
        api_url: str = "https://api.linkedin.com",
        oauth_url: str = "https://www.linkedin.com",
        version: str = DEFAULT_LINKEDIN_VERSION,
        client_id: str | None = None,
        client_secret: str | None = None,
        options: AdapterOptions | None = None,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, options=options)
        self._api = api_url.rstrip("/")
        self._oauth = oauth_url.rstrip("/")
        linkedin_released(version)  # YYYYMM, or ValueError
        self.api_version = version

    def _headers(self, account: AccountCredentials) -> dict[str, str]:
        return {
            **bearer(account.access_token),
            "LinkedIn-Version": self.api_version,
            "X-Restli-Protocol-Version": "2.0.0",
        }

    def _author(self, account: AccountCredentials) -> str:
        author = account.external_account_id
        if not author:
            raise PublishFailure(
                PublishFailureReason.PLATFORM_REJECTED, "LinkedIn account without its member or organization URN"
            )
        return author if author.startswith("urn:li:") else f"urn:li:person:{author}"

    def _url(self, urn: str) -> str:
        return f"https://www.linkedin.com/feed/update/{urn}"

    async def _upload(self, account: AccountCredentials, fetched: FetchedMedia, request: PostRequest) -> dict[str, Any]:
        init = await self.client.post(
            f"{self._api}/rest/images?action=initializeUpload",
            headers=self._headers(account),
            json={"initializeUploadRequest": {"owner": self._author(account)}},
        )
        value = json_or_empty(init).get("value")
        upload_url = value.get("uploadUrl") if isinstance(value, dict) else None
        image = value.get("image") if isinstance(value, dict) else None
        if init.status_code != 200 or not isinstance(upload_url, str) or not isinstance(image, str):
            raise UploadFailed(self.platform, init)
        put = await self.client.put(upload_url, headers=bearer(account.access_token), content=fetched.data)
        if not 200 <= put.status_code < 300:
            raise UploadFailed(self.platform, put)
        deadline = time.monotonic() + self.media.poll_timeout_s
        while True:
            checked = await self.client.get(
                f"{self._api}/rest/images/{quote(image, safe='')}", headers=self._headers(account)
            )
            status = json_or_empty(checked).get("status")
            if checked.status_code != 200:
                raise UploadFailed(self.platform, checked)
            if status == "AVAILABLE":
                return {"id": image}
            if status == "PROCESSING_FAILED":
                raise PublishFailure(
                    PublishFailureReason.MEDIA_REJECTED, f"LinkedIn could not process media {fetched.index}"
                )
            if time.monotonic() > deadline:
                raise UploadFailed(self.platform, None, f": media {fetched.index} still processing")
            await asyncio.sleep(self.media.poll_interval_s)

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        uploads = self._attached(request)
        return await self.client.post(
            f"{self._api}/rest/posts",
            headers=self._headers(account),
            json=({"content": post_content(uploads)} if uploads else {})
            | {
                "author": self._author(account),
                "commentary": little_text(request.text),
                "visibility": "PUBLIC",
                "distribution": {
                    "feedDistribution": "MAIN_FEED",
                    "targetEntities": [],
                    "thirdPartyDistributionChannels": [],
                },
                "lifecycleState": "PUBLISHED",
                "isReshareDisabledByAuthor": False,
            },
        )

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id") or ""
        if not urn:
            raise LookupFailed(self.platform, response, ": the answer had no post id")
        return Published(urn, self._url(urn), now())

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        author = quote(self._author(account), safe="")
        response = await self.client.get(
            f"{self._api}/rest/posts?author={author}&q=author&count=20&sortBy=LAST_MODIFIED",
            headers=self._headers(account),
        )
        if response.status_code == 403 or (response.status_code == 400 and "permission" in response.text.lower()):
            raise PublishFailure(
                PublishFailureReason.OUTCOME_UNKNOWN,
                f"LinkedIn may have published it, and refused to list the author's posts ({response.status_code}:"
                " the account lacks r_member_social): not posted again, check the profile",
            )
        if response.status_code != 200:
            raise LookupFailed(self.platform, response)
        wanted = little_text(request.text)
        for post in items(json_or_empty(response).get("elements")):
            if isinstance(post, dict) and same_text(str(post.get("commentary", "")), wanted) and post.get("id"):
                return Published(str(post["id"]), self._url(str(post["id"])), now())
        return None

    def _error_code(self, body: dict[str, object]) -> object:
        # {"status": 422, "code": "UNPROCESSABLE_ENTITY", "serviceErrorCode": 100, "message": ...}
        parts = [str(v) for v in (body.get("code"), body.get("serviceErrorCode")) if isinstance(v, str | int)]
        return " ".join(parts) or None

    def _unannounced_limit(self) -> RateLimit:
        # A 429 now and then protects LinkedIn's infrastructure and passes within the tries;
        # one that outlasts them is a daily application or member limit.
        return RateLimit(next_utc_midnight(now()), DeferralReason.DAILY_CAP)

    def _version_retired(self, response: httpx.Response) -> bool:
        return linkedin_version_retired(response.status_code, json_or_empty(response))

    def _token_url(self, account: AccountCredentials) -> str:
        return f"{self._oauth}/oauth/v2/accessToken"
