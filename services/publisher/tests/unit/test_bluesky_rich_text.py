"""The Bluesky adapter's rich text against the fake PDS: facets for links, hashtags and
resolved mentions (an unresolved one stays text), `langs`, the link card (from the page through
the egress guard, or from the URL), and the same record on every try. The real PDS checks the
same in platform_tests/."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, RetryPolicy
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.link_cards import LinkCardReader, card_from_html, card_from_url
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeBluesky, Fault, serve

TEXT = "Spring menu 🌸 https://example.com/menu #Spring2027 with @alice.test and @nobody.test"


class Page:
    """A web page server: `pages` maps a path to (content type, body)."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.hits = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.hits += 1
        kind, body = self.pages.get(scope["path"], ("text/plain", b"missing"))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind.encode())]})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def pds() -> AsyncIterator[tuple[FakeBluesky, str]]:
    fake = FakeBluesky()
    async with serve(fake) as url:
        yield fake, url


@pytest.fixture
async def web() -> AsyncIterator[tuple[Page, str]]:
    page = Page()
    async with serve(page) as url:
        yield page, url


def _adapter(url: str, link_cards: LinkCardReader | None = None) -> BlueskyAdapter:
    options = AdapterOptions(
        policy=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, deadline_s=10.0),
        http=HttpSettings(connect_timeout_s=1.0, read_timeout_s=0.3),
        egress=LOOPBACK_EGRESS,
        rng=random.Random(3),
    )
    return BlueskyAdapter(pds_url=url, options=options, link_cards=link_cards)


def _account(url: str) -> AccountCredentials:
    return AccountCredentials(uuid.uuid4(), "BLUESKY", "@hopcast.test", "did:plc:hopcast", url, "good-access")


def _request(text: str = TEXT, **fields: Any) -> PostRequest:
    return PostRequest(f"hopcast-{uuid.uuid4()}", text, datetime.now(UTC), **fields)


async def _nothing(*_: object) -> None:
    return None


async def test_a_post_carries_facets_langs_and_a_card_of_its_link(pds: tuple[FakeBluesky, str]) -> None:
    fake, url = pds
    adapter = _adapter(url)
    await adapter.publish(_account(url), _request(language="en"), resumed=False, on_refreshed=_nothing)
    await adapter.close()
    (post,) = fake.posts
    record = post["record"]
    data = record["text"].encode()
    spans = [(data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(), f["features"]) for f in record["facets"]]
    assert spans == [
        ("https://example.com/menu", [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/menu"}]),
        ("#Spring2027", [{"$type": "app.bsky.richtext.facet#tag", "tag": "Spring2027"}]),
        ("@alice.test", [{"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:alice"}]),
    ]  # @nobody.test does not resolve: plain text
    assert record["text"] == TEXT and record["langs"] == ["en"]
    assert record["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {"uri": "https://example.com/menu", "title": "example.com/menu", "description": ""},
    }


async def test_no_card_beside_media_no_langs_when_unknown_or_malformed(pds: tuple[FakeBluesky, str]) -> None:
    fake, url = pds
    adapter = _adapter(url)
    await adapter.publish(_account(url), _request(has_media=True), resumed=False, on_refreshed=_nothing)
    plain_request = _request("plain words", language="en_US!")
    await adapter.publish(_account(url), plain_request, resumed=False, on_refreshed=_nothing)
    await adapter.close()
    with_media, plain = (p["record"] for p in fake.posts)
    assert "embed" not in with_media and "langs" not in with_media and len(with_media["facets"]) == 3
    assert set(plain) == {"$type", "text", "createdAt"}


async def test_every_try_sends_the_same_record_and_resolves_once(pds: tuple[FakeBluesky, str]) -> None:
    fake, url = pds
    adapter = _adapter(url)
    # The first try reaches the PDS, which stores nothing and times out; the second succeeds.
    fake.fail_next(Fault(delay_s=1.0, create=False))
    await adapter.publish(_account(url), _request(language="pt-BR"), resumed=False, on_refreshed=_nothing)
    await adapter.close()
    assert fake.creates() == 2 and len(fake.posts) == 1
    assert fake.calls.count(("GET", "/xrpc/com.atproto.identity.resolveHandle")) == 2  # two handles, once each
    assert fake.posts[0]["record"]["langs"] == ["pt-BR"]


async def test_the_card_reads_the_page_through_the_guard(pds: tuple[FakeBluesky, str], web: tuple[Page, str]) -> None:
    fake, url = pds
    page, site = web
    page.pages["/menu"] = (
        "text/html; charset=utf-8",
        b'<html><head><title>Ignored</title><meta property="og:title" content="Spring &amp; menu">'
        b'<meta name="description" content="  Fresh\n dishes "></head><body>x</body></html>',
    )
    adapter = _adapter(url, LinkCardReader(LOOPBACK_EGRESS, timeout_s=1.0))
    await adapter.publish(_account(url), _request(f"see {site}/menu"), resumed=False, on_refreshed=_nothing)
    await adapter.close()
    assert fake.posts[0]["record"]["embed"]["external"] == {
        "uri": f"{site}/menu",
        "title": "Spring & menu",
        "description": "Fresh dishes",
    }


async def test_a_page_that_cannot_be_read_gives_the_url_card(web: tuple[Page, str]) -> None:
    page, site = web
    page.pages["/big"] = ("text/html", b"<html><head>" + b"<!-- x -->" * 100_000 + b"<title>Late</title>")
    page.pages["/pdf"] = ("application/pdf", b"%PDF")
    reader = LinkCardReader(LOOPBACK_EGRESS, max_bytes=64 * 1024, timeout_s=1.0)
    assert await reader.card(f"{site}/big") == card_from_url(f"{site}/big")  # the title is past the cap
    assert await reader.card(f"{site}/pdf") == card_from_url(f"{site}/pdf")
    await reader.close()
    hits = page.hits
    # Without loopback egress the guard refuses before connecting: the URL's card, no request.
    guarded = LinkCardReader(EgressPolicy(), timeout_s=1.0)
    assert await guarded.card(f"{site}/menu") == card_from_url(f"{site}/menu")
    await guarded.close()
    assert page.hits == hits


def test_card_texts_come_from_opengraph_then_the_title() -> None:
    html = "<head><title> A  page </title><meta name=description content='About it'></head>"
    assert card_from_html("https://a.example/x", html).title == "A page"
    assert card_from_html("https://a.example/x", html).description == "About it"
    assert card_from_html("https://a.example/x/", "<p>no head</p>").title == "a.example/x"
