"""Link cards (what Bluesky shows under a post whose link has no image beside it:
app.bsky.embed.external with the page's title and description).

The page is read only through the egress guard (`platform_client`: public addresses only,
judged on the addresses actually connected to, redirects checked again), without any token,
with a short timeout and at most `max_bytes` of it; anything that goes wrong gives the card
built from the URL alone, so a slow or hostile page never holds a post back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx

from hopcast_publisher.adapters.platforms.egress import EgressPolicy, EgressRefused, platform_client

log = logging.getLogger(__name__)

# The card's texts are cut to this many characters (Bluesky's own client cuts them shorter).
MAX_TITLE = 300
MAX_DESCRIPTION = 1000


@dataclass(frozen=True)
class LinkCard:
    uri: str
    title: str
    description: str = ""

    def embed(self) -> dict[str, object]:
        """The record's `embed`: app.bsky.embed.external."""
        external = {"uri": self.uri, "title": self.title, "description": self.description}
        return {"$type": "app.bsky.embed.external", "external": external}


def card_from_url(uri: str) -> LinkCard:
    """The card of a page that was not read: its address without the scheme as the title."""
    parts = urlsplit(uri)
    title = (parts.netloc + parts.path).rstrip("/") or uri
    return LinkCard(uri, title[:MAX_TITLE])


class _PageHead(HTMLParser):
    """The title and description of a page's head: OpenGraph first, then <title> and the
    description meta tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = {k.lower(): v or "" for k, v in attrs}
            key = (values.get("property") or values.get("name") or "").lower()
            if key in ("og:title", "og:description", "description", "twitter:title", "twitter:description"):
                self.meta.setdefault(key, values.get("content", ""))
        elif tag == "body":
            self.done = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _clean(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def card_from_html(uri: str, html: str) -> LinkCard:
    """The card of a page from its HTML (its head is enough); the URL's card when it has no title."""
    head = _PageHead()
    head.feed(html)
    meta = head.meta
    title = _clean(meta.get("og:title") or meta.get("twitter:title") or head.title, MAX_TITLE)
    description = meta.get("og:description") or meta.get("twitter:description") or meta.get("description") or ""
    if not title:
        return card_from_url(uri)
    return LinkCard(uri, title, _clean(description, MAX_DESCRIPTION))


class LinkCardReader:
    """Reads a page's title and description for its card, within the egress guard."""

    def __init__(
        self,
        egress: EgressPolicy,
        *,
        max_bytes: int = 256 * 1024,
        timeout_s: float = 3.0,
        user_agent: str = "hopcast-publisher/0.1 (link preview)",
    ) -> None:
        # Its own client: nothing of an account's (no token, no cookie) ever goes to a page.
        self.client = platform_client(
            "LINK_CARD", egress, connect_timeout_s=timeout_s, read_timeout_s=timeout_s, user_agent=user_agent
        )
        self.client.max_redirects = 3
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s

    async def card(self, uri: str) -> LinkCard:
        try:
            async with asyncio.timeout(self._timeout_s):
                html = await self._head_of(uri)
        except (httpx.HTTPError, EgressRefused, TimeoutError, UnicodeDecodeError, LookupError) as exc:
            log.info("link card of a page on %s built from its URL (%s)", urlsplit(uri).hostname, type(exc).__name__)
            return card_from_url(uri)
        if html is None:
            return card_from_url(uri)
        try:
            return card_from_html(uri, html)
        except Exception:  # a hostile page must not fail the post: it only loses its title
            log.warning("link card of a page on %s: its HTML could not be read", urlsplit(uri).hostname)
            return card_from_url(uri)

    async def _head_of(self, uri: str) -> str | None:
        """The page's first `max_bytes` as text, or None when it is not an HTML page."""
        async with self.client.stream("GET", uri, follow_redirects=True, headers={"Accept": "text/html"}) as response:
            kind = response.headers.get("content-type", "")
            if response.status_code != 200 or "html" not in kind.lower():
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= self._max_bytes:
                    break
            return bytes(body[: self._max_bytes]).decode(response.encoding or "utf-8", errors="replace")

    async def close(self) -> None:
        await self.client.aclose()
