"""Bluesky over the AT Protocol: com.atproto.repo.createRecord of an app.bsky.feed.post.

Idempotency: the record key (rkey) is a TID made from the request's fixed creation time and
its idempotency key, so every try writes the same record, and "does it exist?" is
com.atproto.repo.getRecord of that key. Tokens: the session's accessJwt, refreshed with
com.atproto.server.refreshSession (the refreshJwt as bearer). An expired token is a 400
`ExpiredToken` on Bluesky, or a 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import httpx

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostRequest,
    Published,
    PublishFailure,
    RefreshedTokens,
)
from hopcast_publisher.adapters.platforms.http import (
    AdapterOptions,
    HttpPlatformAdapter,
    LookupFailed,
    bearer,
    json_or_empty,
    now,
)
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, bluesky_rate_limit
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth, atproto_refusal
from hopcast_shared.contract import PublishFailureReason

COLLECTION = "app.bsky.feed.post"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def tid_for(created_at: datetime, idempotency_key: str) -> str:
    """A record key in TID form: microseconds since the epoch and a 10-bit clock id from the key."""
    micros = int(created_at.timestamp() * 1_000_000) & ((1 << 53) - 1)
    clock_id = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:2], "big") & 0x3FF
    value = (micros << 10) | clock_id
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` of a JWT, read without verifying it (the PDS verifies); None if unreadable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class BlueskyAdapter(HttpPlatformAdapter):
    platform = "BLUESKY"

    def __init__(
        self, *, pds_url: str, app_url: str = "https://bsky.app", options: AdapterOptions | None = None
    ) -> None:
        super().__init__(options)
        self._pds_url = pds_url.rstrip("/")
        self._app_url = app_url.rstrip("/")

    def _base(self, account: AccountCredentials) -> str:
        return (account.api_base_url or self._pds_url).rstrip("/")

    def _repo(self, account: AccountCredentials) -> str:
        return account.external_account_id or account.handle.lstrip("@")

    def _url(self, account: AccountCredentials, rkey: str) -> str:
        return f"{self._app_url}/profile/{self._repo(account)}/post/{rkey}"

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        record = {
            "$type": COLLECTION,
            "text": request.text,
            "createdAt": request.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        return await self.client.post(
            f"{self._base(account)}/xrpc/com.atproto.repo.createRecord",
            headers=bearer(account.access_token),
            json={
                "repo": self._repo(account),
                "collection": COLLECTION,
                "rkey": tid_for(request.created_at, request.idempotency_key),
                "record": record,
            },
        )

    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        body = json_or_empty(response)
        uri = str(body.get("uri") or "")
        rkey = uri.rsplit("/", 1)[-1] if uri else tid_for(request.created_at, request.idempotency_key)
        return Published(uri or f"at://{self._repo(account)}/{COLLECTION}/{rkey}", self._url(account, rkey), now())

    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        rkey = tid_for(request.created_at, request.idempotency_key)
        response = await self.client.get(
            f"{self._base(account)}/xrpc/com.atproto.repo.getRecord",
            headers=bearer(account.access_token),
            params={"repo": self._repo(account), "collection": COLLECTION, "rkey": rkey},
        )
        if response.status_code == 200:
            uri = str(json_or_empty(response).get("uri") or f"at://{self._repo(account)}/{COLLECTION}/{rkey}")
            return Published(uri, self._url(account, rkey), now())
        if response.status_code == 400 and json_or_empty(response).get("error") == "RecordNotFound":
            return None
        raise LookupFailed(self.platform, response)

    def _error_code(self, body: dict[str, object]) -> object:
        return body.get("error")  # XRPC: {"error": "InvalidRequest", "message": "..."}

    def _token_expired(self, response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        return response.status_code == 400 and json_or_empty(response).get("error") in ("ExpiredToken", "InvalidToken")

    def _rate_limit(self, response: httpx.Response) -> RateLimit | None:
        return bluesky_rate_limit(response.headers)

    async def _refresh(self, account: AccountCredentials) -> RefreshedTokens:
        assert account.refresh_token is not None
        response = await self.client.post(
            f"{self._base(account)}/xrpc/com.atproto.server.refreshSession", headers=bearer(account.refresh_token)
        )
        body = json_or_empty(response)
        if response.status_code != 200 or not isinstance(body.get("accessJwt"), str):
            detail = f"Bluesky refused to refresh the session ({response.status_code})"
            reauth = atproto_refusal(response.status_code, body.get("error"))
            if reauth is not None:
                raise NeedsReauth(reauth, detail)
            raise PublishFailure(PublishFailureReason.TOKEN_INVALID, detail)
        access = str(body["accessJwt"])
        refresh = body.get("refreshJwt")
        return RefreshedTokens(access, str(refresh) if isinstance(refresh, str) else None, jwt_expiry(access))
