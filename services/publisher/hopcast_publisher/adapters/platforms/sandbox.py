"""The sandbox adapter, the local default: it records each post (its text and its media, with
their alt texts) and returns an external id and URL at once, without calling any platform.

Ids are derived from the idempotency key, so publishing the same post again (a resumption
after a crash) returns the same id: the sandbox is idempotent the way the real adapters
are. Posts are kept in memory for inspection (`posts`), bounded.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PlatformAdapter,
    PostMedia,
    PostRequest,
    Published,
    RefreshedTokens,
    TokensRefreshed,
)
from hopcast_publisher.adapters.platforms.http import now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxPost:
    platform: str
    social_account_id: str
    text: str
    published: Published
    media: tuple[PostMedia, ...] = ()
    """The images or video it was given, in order, each with its alt text."""


class SandboxAdapter(PlatformAdapter):
    def __init__(self, platform: str, *, base_url: str = "https://sandbox.hopcast.invalid", keep: int = 10_000) -> None:
        self.platform = platform
        self._base_url = base_url.rstrip("/")
        self._keep = keep
        self.posts: OrderedDict[str, SandboxPost] = OrderedDict()
        self.calls = 0

    async def publish(
        self,
        account: AccountCredentials,
        request: PostRequest,
        *,
        resumed: bool,
        on_refreshed: TokensRefreshed,
    ) -> Published:
        if request.lease is not None:
            await request.lease.confirm(0.0)
        self.calls += 1
        existing = self.posts.get(request.idempotency_key)
        if existing is not None:
            return existing.published
        digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:20]
        external_id = f"sandbox-{self.platform.lower()}-{digest}"
        # Quoted: a page's handle may hold spaces ("Lumen Yoga Studio"), and a URL may not.
        handle = quote(account.handle.lstrip("@").replace("/", "_"), safe="@.-_~") or "account"
        published = Published(external_id, f"{self._base_url}/{self.platform.lower()}/{handle}/{digest}", now())
        self.posts[request.idempotency_key] = SandboxPost(
            self.platform, str(account.social_account_id), request.text, published, request.media
        )
        if request.media:
            log.info(
                "sandbox %s post %s with %d media: %s",
                self.platform,
                external_id,
                len(request.media),
                "; ".join(f"{m.url} (alt: {m.alt_text or 'none'})" for m in request.media),
            )
        while len(self.posts) > self._keep:
            self.posts.popitem(last=False)
        return published

    async def refresh(self, account: AccountCredentials) -> RefreshedTokens:
        # Nothing to exchange: the sandbox accepts any token.
        return RefreshedTokens(account.access_token, account.refresh_token, None)
