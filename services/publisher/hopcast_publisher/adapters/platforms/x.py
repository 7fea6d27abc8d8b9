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
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, timedelta

import httpx

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, Published
from hopcast_publisher.adapters.platforms.http import (
    AdapterOptions,
    LookupFailed,
    bearer,
    items,
    json_or_empty,
    now,
)
from hopcast_publisher.adapters.platforms.oauth import OAuthPlatformAdapter
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, x_rate_limit
from hopcast_shared.text_rules.entities import extract_urls

# A post created before publishing started is not ours; the margin covers clocks apart.
_LOOKUP_MARGIN = timedelta(minutes=5)
_X_ESCAPES = re.compile(r"&(amp|lt|gt);")
_UNESCAPED = {"amp": "&", "lt": "<", "gt": ">"}
_URL = "\x00"  # stands for any URL: no post holds a NUL


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


def same_links(sent: str, tweet: dict[str, object]) -> bool:
    """Whether the links X says the post's t.co links expand to are the sent text's links, in
    order; true when X did not say (entities not returned)."""
    entities = tweet.get("entities")
    urls = items(entities.get("urls")) if isinstance(entities, dict) else []
    expanded = [u.get("expanded_url") for u in urls if isinstance(u, dict)]
    if not urls or not all(isinstance(e, str) for e in expanded):
        return True
    text = unicodedata.normalize("NFC", sent)
    return [_link(str(e)) for e in expanded] == [_link(text[u.start : u.end]) for u in extract_urls(text)]


class XAdapter(OAuthPlatformAdapter):
    platform = "TWITTER"
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

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        return await self.client.post(
            f"{self._api}/2/tweets", headers=bearer(account.access_token), json={"text": request.text}
        )

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
            if (
                isinstance(tweet, dict)
                and tweet.get("id")
                and same_post_text(request.text, str(tweet.get("text", "")))
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
