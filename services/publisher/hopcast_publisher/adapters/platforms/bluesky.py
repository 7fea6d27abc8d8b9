"""Bluesky over the AT Protocol: com.atproto.repo.createRecord of an app.bsky.feed.post.

Idempotency: the record key (rkey) is a TID made from the request's fixed creation time and
its idempotency key, so every try writes the same record, and "does it exist?" is
com.atproto.repo.getRecord of that key. Tokens: the session's accessJwt, refreshed with
com.atproto.server.refreshSession (the refreshJwt as bearer). An expired token is a 400
`ExpiredToken` on Bluesky, or a 401.

Rich text (Bluesky links nothing by itself): facets for the text's links, hashtags and
mentions, detected as the official client does (`hopcast_shared.text_rules.bluesky_facets`),
each mention resolved to a DID with com.atproto.identity.resolveHandle (one that does not
resolve stays plain text); `langs` from the post's language; and, for a post with a link and
no media, a link card (app.bsky.embed.external) of its first link, read from the page through
the egress guard when `link_cards` is given, else built from the URL. They are made once per
post, so every try sends the same record.

Images (at most four, `media.py`): each uploaded with com.atproto.repo.uploadBlob (the raw
bytes, their sniffed type as Content-Type; the PDS answers the blob ref), then the record's
embed is `app.bsky.embed.images` with each image's `alt` and `aspectRatio` (its width and
height as shown), per the lexicon (app/bsky/embed/images.json: `image` a blob of `image/*`
up to 1,000,000 bytes, `alt` required, `aspectRatio` {width, height} of positive integers).
A blob is content-addressed: uploading the same bytes again gives the same ref.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

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
from hopcast_publisher.adapters.platforms.link_cards import LinkCardReader, card_from_url
from hopcast_publisher.adapters.platforms.media import Uploaded, UploadFailed
from hopcast_publisher.adapters.platforms.media_fetch import FetchedMedia
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit, bluesky_rate_limit
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth, atproto_refusal
from hopcast_shared.contract import PublishFailureReason
from hopcast_shared.text_rules.bluesky_facets import detect_facets, first_link, mention_handles, record_facets

COLLECTION = "app.bsky.feed.post"
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# A language tag the lexicon's `language` format takes (BCP-47: a primary tag, then subtags).
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
# How many posts' rich parts (facets, card) are kept for their retries.
_RICH_CACHE = 1024


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


def images_embed(uploads: list[Uploaded]) -> dict[str, object]:
    """The record's `embed` for uploaded images: app.bsky.embed.images, in the post's order."""
    images = []
    for upload in uploads:
        image: dict[str, object] = {"alt": upload.fetched.media.alt_text or "", "image": upload.remote["blob"]}
        facts = upload.fetched.facts
        if facts.width and facts.height:
            image["aspectRatio"] = {"width": facts.width, "height": facts.height}
        images.append(image)
    return {"$type": "app.bsky.embed.images", "images": images}


class BlueskyAdapter(HttpPlatformAdapter):
    platform = "BLUESKY"
    uploads_media = True
    # A blob no record references yet is the PDS's to drop after a while; once a post holds it,
    # it stays. Within the hour a retry reuses it; after, uploading again costs one call.
    upload_ttl = timedelta(hours=1)

    def __init__(
        self,
        *,
        pds_url: str,
        app_url: str = "https://bsky.app",
        options: AdapterOptions | None = None,
        link_cards: LinkCardReader | None = None,
    ) -> None:
        super().__init__(options)
        self._pds_url = pds_url.rstrip("/")
        self._app_url = app_url.rstrip("/")
        self._link_cards = link_cards
        self._rich: dict[str, dict[str, object]] = {}

    async def close(self) -> None:
        await super().close()
        if self._link_cards is not None:
            await self._link_cards.close()

    def _base(self, account: AccountCredentials) -> str:
        return (account.api_base_url or self._pds_url).rstrip("/")

    def _repo(self, account: AccountCredentials) -> str:
        return account.external_account_id or account.handle.lstrip("@")

    def _url(self, account: AccountCredentials, rkey: str) -> str:
        return f"{self._app_url}/profile/{self._repo(account)}/post/{rkey}"

    async def _resolve_handle(self, account: AccountCredentials, handle: str) -> str | None:
        """The DID of a handle, or None when it does not resolve (the mention stays text)."""
        try:
            response = await self.client.get(
                f"{self._base(account)}/xrpc/com.atproto.identity.resolveHandle", params={"handle": handle}
            )
        except httpx.HTTPError:
            return None
        did = json_or_empty(response).get("did") if response.status_code == 200 else None
        return did if isinstance(did, str) and did.startswith("did:") else None

    async def rich_parts(self, account: AccountCredentials, request: PostRequest) -> dict[str, object]:
        """The record's facets, langs and embed for this post (made once, then reused)."""
        cached = self._rich.get(request.idempotency_key)
        if cached is not None:
            return cached
        facets = detect_facets(request.text)
        dids = {}
        for handle in mention_handles(facets):
            did = await self._resolve_handle(account, handle)
            if did is not None:
                dids[handle] = did
        parts: dict[str, object] = {}
        if facets and (rich := record_facets(facets, dids)):
            parts["facets"] = rich
        if request.language and _LANGUAGE.fullmatch(request.language):
            parts["langs"] = [request.language]
        link = first_link(facets)
        if link is not None and not (request.has_media or request.media):
            card = await self._link_cards.card(link) if self._link_cards is not None else card_from_url(link)
            parts["embed"] = card.embed()
        if len(self._rich) >= _RICH_CACHE:
            self._rich.pop(next(iter(self._rich)))
        self._rich[request.idempotency_key] = parts
        return parts

    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        record = {
            "$type": COLLECTION,
            "text": request.text,
            "createdAt": request.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            **await self.rich_parts(account, request),
        }
        if uploads := self._attached(request):
            record["embed"] = images_embed(uploads)
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

    async def _upload(self, account: AccountCredentials, fetched: FetchedMedia, request: PostRequest) -> dict[str, Any]:
        response = await self.client.post(
            f"{self._base(account)}/xrpc/com.atproto.repo.uploadBlob",
            headers={**bearer(account.access_token), "Content-Type": fetched.facts.mime_type},
            content=fetched.data,
        )
        blob = json_or_empty(response).get("blob")
        if response.status_code != 200 or not isinstance(blob, dict):
            raise UploadFailed(self.platform, response)
        return {"blob": blob}

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
