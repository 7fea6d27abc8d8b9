"""X: POST /2/tweets with the account's OAuth 2 user token.

X has no idempotency key: "does it exist?" reads the account's posts since publishing started
(GET /2/users/{id}/tweets) and looks for the same text. X does not give the text back as sent:
every URL is wrapped as a t.co link and & < > come HTML-escaped, so both sides are compared
in a form that survives that (`same_post_text`), and, where X says what its links expand to,
the links must be the same too. X also refuses an exact duplicate (403), which after an
unknown outcome sends us to look once more. Rate limits: x-rate-limit-remaining /
x-rate-limit-reset (epoch seconds) and the 24-hour caps of the user and the app
(x-user-limit-24hour-*, x-app-limit-24hour-*), a used-up cap deferring the post until its
reset (`rate_limits.py`). Tokens: refreshed at
/2/oauth2/token (grant_type=refresh_token) with the app's client id (and secret, for a
confidential client).

Media (`media.py`; docs.x.com/x-api/media/quickstart/media-upload-chunked): each file goes up
with POST /2/media/upload in the chunked form, INIT (media_type, total_bytes, media_category
tweet_image, tweet_gif or tweet_video), APPEND (segment_index, 4 MB chunks), FINALIZE; when
FINALIZE answers `processing_info` (video, GIFs), GET /2/media/upload?command=STATUS is asked,
after `check_after_secs`, until `succeeded` (`failed` is MEDIA_REJECTED). Alt text is set with
POST /2/media/metadata. The post carries `media.media_ids`. A media id may be reused by the
account's later posts until `expires_after_secs`. X appends a post's media link (a t.co URL) to
its text, so the lookup after an unknown outcome allows that trailing link.
"""

from __future__ import annotations

import asyncio
import re
import time
import unicodedata
from datetime import UTC, timedelta
from typing import Any

import httpx

from hopcast_publisher.adapters.media_uploads import upload_key
from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, Published, PublishFailure
from hopcast_publisher.adapters.platforms.http import (
    AdapterOptions,
    LookupFailed,
    bearer,
    items,
    json_or_empty,
    now,
)
from hopcast_publisher.adapters.platforms.media import UploadFailed
from hopcast_publisher.adapters.platforms.media_fetch import FetchedMedia
from hopcast_publisher.adapters.platforms.oauth import OAuthPlatformAdapter
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, x_rate_limit
from hopcast_shared.contract import PublishFailureReason
from hopcast_shared.text_rules.entities import extract_urls

# A post created before publishing started is not ours; the margin covers clocks apart.
_LOOKUP_MARGIN = timedelta(minutes=5)
_X_ESCAPES = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}
_URL = "\x00"  # stands for any URL: no post holds a NUL
_MEDIA_LINK = re.compile(r"\s*https://t\.co/\w+\s*$")
_MEDIA_URL = re.compile(r"/(photo|video)/\d+$")
CHUNK_BYTES = 4 * 1024 * 1024


def same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def comparable(text: str) -> str:
    """A post's text as it compares with X's copy of it: NFC (X normalizes), every URL as
    twitter-text finds it (what X wraps as t.co) one placeholder, whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    parts, at = [], 0
    for url in extract_urls(text):
        parts += [text[at : url.start], _URL]
        at = url.end
    parts.append(text[at:])
    return " ".join("".join(parts).split())


def unescaped(timeline_text: str) -> str:
    """X's copy of a text with its HTML escapes of & < > undone (one pass: `&amp;lt;` was `&lt;`)."""
    return _X_ESCAPES.sub(lambda m: _UNESCAPED[m.group(1)], timeline_text)


def same_post_text(sent: str, timeline_text: str) -> bool:
    """Whether X's copy of a post (t.co links, & < > escaped) is the text we sent."""
    return comparable(sent) == comparable(unescaped(timeline_text))


def _link(url: str) -> str:
    url = url.strip().lower()
    for scheme in ("https://", "http://"):
        url = url.removeprefix(scheme)
    return url.rstrip("/")


def without_media_link(timeline_text: str) -> str:
    """X's copy of a post with media, without the media's t.co link X appends to the text."""
    return _MEDIA_LINK.sub("", timeline_text)


def same_links(sent: str, tweet: dict[str, object]) -> bool:
    """Whether the links X says the post's t.co links expand to are the sent text's links, in
    order (the media's own link left out); true when X did not say (entities not returned)."""
    entities = tweet.get("entities")
    urls = items(entities.get("urls")) if isinstance(entities, dict) else []
    urls = [
        u
        for u in urls
        if not (isinstance(u, dict) and ("media_key" in u or _MEDIA_URL.search(str(u.get("expanded_url", "")))))
    ]
    expanded = [u.get("expanded_url") for u in urls if isinstance(u, dict)]
    if not urls or not all(isinstance(e, str) for e in expanded):
        return True
    text = unicodedata.normalize("NFC", sent)
    return [_link(str(e)) for e in expanded] == [_link(text[u.start : u.end]) for u in extract_urls(text)]


class XAdapter(OAuthPlatformAdapter):
    platform = "TWITTER"
    uploads_media = True
    oauth_name = "X"
    client_auth = "basic"  # a public client (id only) or a confidential one (HTTP Basic)

    def __init__(
        self,
        *,
        api_url: str = "https://api.x.com",
        web_url: str = "https://x.com",
        client_id: str | None = None,
        client_secret: str | None = None,
        options: AdapterOptions | None = None,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, options=options)
        self._api = api_url.rstrip("/")
        self._web = web_url.rstrip("/")

    def _url(self, account: AccountCredentials, tweet_id: str) -> str:
        return f"{self._web}/{account.handle.lstrip('@')}/status/{tweet_id}"

    def _upload_key(self, fetched: FetchedMedia, request: PostRequest) -> str:
        return upload_key(fetched.sha256, fetched.media.alt_text)  # the alt text is the media's

    def _ttl(self, remote: dict[str, Any]) -> timedelta:
        expires = remote.get("expires_after_secs")
        if isinstance(expires, int) and expires > 0:
            return min(self.upload_ttl, timedelta(seconds=expires * 0.9))
        return self.upload_ttl

    async def _upload(self, account: AccountCredentials, fetched: FetchedMedia, request: PostRequest) -> dict[str, Any]:
        url, auth = f"{self._api}/2/media/upload", bearer(account.access_token)
        mime = fetched.facts.mime_type
        category = "tweet_video" if mime.startswith("video/") else "tweet_gif" if mime == "image/gif" else "tweet_image"
        init = await self.client.post(
            url,
            headers=auth,
            data={
                "command": "INIT",
                "media_type": mime,
                "total_bytes": str(len(fetched.data)),
                "media_category": category,
            },
        )
        data = _data(init)
        media_id = data.get("id")
        if init.status_code not in (200, 201, 202) or not isinstance(media_id, str):
            raise UploadFailed(self.platform, init)
        for segment, start in enumerate(range(0, len(fetched.data), CHUNK_BYTES)):
            chunk = fetched.data[start : start + CHUNK_BYTES]
            appended = await self.client.post(
                url,
                headers=auth,
                data={"command": "APPEND", "media_id": media_id, "segment_index": str(segment)},
                files={"media": ("chunk", chunk, "application/octet-stream")},
            )
            if not 200 <= appended.status_code < 300:
                raise UploadFailed(self.platform, appended)
        finalized = await self.client.post(url, headers=auth, data={"command": "FINALIZE", "media_id": media_id})
        data = _data(finalized)
        if not 200 <= finalized.status_code < 300:
            raise UploadFailed(self.platform, finalized)
        await self._processed(account, media_id, data, fetched.index)
        if fetched.media.alt_text:
            described = await self.client.post(
                f"{self._api}/2/media/metadata",
                headers=auth,
                json={"id": media_id, "metadata": {"alt_text": {"text": fetched.media.alt_text}}},
            )
            if not 200 <= described.status_code < 300:
                raise UploadFailed(self.platform, described)
        expires = data.get("expires_after_secs")
        return {"id": media_id} | ({"expires_after_secs": expires} if isinstance(expires, int) else {})

    async def _processed(self, account: AccountCredentials, media_id: str, data: dict[str, Any], index: int) -> None:
        """Wait while X processes the upload (STATUS, after `check_after_secs`)."""
        deadline = time.monotonic() + self.media.poll_timeout_s
        info = data.get("processing_info")
        while isinstance(info, dict) and info.get("state") in ("pending", "in_progress"):
            if time.monotonic() > deadline:
                raise UploadFailed(self.platform, None, f": media {index} still processing")
            after = info.get("check_after_secs")
            wait = float(after) if isinstance(after, int | float) else self.media.poll_interval_s
            await asyncio.sleep(min(max(wait, 0.0), self.media.poll_interval_s * 5))
            status = await self.client.get(
                f"{self._api}/2/media/upload",
                headers=bearer(account.access_token),
                params={"command": "STATUS", "media_id": media_id},
            )
            if status.status_code != 200:
                raise UploadFailed(self.platform, status)
            info = _data(status).get("processing_info")
        if isinstance(info, dict) and info.get("state") == "failed":
            error = info.get("error")
            code = error.get("name") or error.get("code") if isinstance(error, dict) else None
            detail = f"X could not process media {index}" + (f" ({code})" if isinstance(code, str | int) else "")
            raise PublishFailure(PublishFailureReason.MEDIA_REJECTED, detail)

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        body: dict[str, object] = {"text": request.text}
        if uploads := self._attached(request):
            body["media"] = {"media_ids": [u.remote["id"] for u in uploads]}
        return await self.client.post(f"{self._api}/2/tweets", headers=bearer(account.access_token), json=body)

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        data = json_or_empty(response).get("data")
        tweet_id = str(data.get("id")) if isinstance(data, dict) and data.get("id") else ""
        if not tweet_id:
            raise LookupFailed(self.platform, response, ": the answer had no post id")
        return Published(tweet_id, self._url(account, tweet_id), now())

    async def _user_id(self, account: AccountCredentials) -> str:
        if account.external_account_id:
            return account.external_account_id
        response = await self.client.get(f"{self._api}/2/users/me", headers=bearer(account.access_token))
        data = json_or_empty(response).get("data")
        if response.status_code != 200 or not isinstance(data, dict) or not data.get("id"):
            raise LookupFailed(self.platform, response)
        return str(data["id"])

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        user_id = await self._user_id(account)
        response = await self.client.get(
            f"{self._api}/2/users/{user_id}/tweets",
            headers=bearer(account.access_token),
            params={
                "max_results": 100,
                "tweet.fields": "created_at,entities",
                "start_time": (request.created_at - _LOOKUP_MARGIN).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        if response.status_code != 200:
            raise LookupFailed(self.platform, response)
        for tweet in items(json_or_empty(response).get("data")):
            text = str(tweet.get("text", "")) if isinstance(tweet, dict) else ""
            if (
                isinstance(tweet, dict)
                and tweet.get("id")
                and same_post_text(request.text, without_media_link(text) if request.media else text)
                and same_links(request.text, tweet)
            ):
                return Published(str(tweet["id"]), self._url(account, str(tweet["id"])), now())
        return None

    def _error_code(self, body: dict[str, object]) -> object:
        # v2 answers a problem ({"title": "Forbidden", "type": ..., "detail": ...}), older
        # endpoints {"errors": [{"code": 187, "message": ...}]}: the code, else the title.
        for error in items(body.get("errors"))[:1]:
            if isinstance(error, dict) and (error.get("code") or error.get("title")):
                return error.get("code") or error.get("title")
        return body.get("title")

    def _rate_limit(self, response: httpx.Response) -> RateLimit | None:
        return x_rate_limit(response.headers)

    def _token_url(self, account: AccountCredentials) -> str:
        return f"{self._api}/2/oauth2/token"


def _data(response: httpx.Response) -> dict[str, Any]:
    """The `data` object of an X v2 answer (empty when there is none)."""
    data = json_or_empty(response).get("data")
    return data if isinstance(data, dict) else {}
