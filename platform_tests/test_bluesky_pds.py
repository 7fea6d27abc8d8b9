"""The real Bluesky adapter against a real PDS (@atproto/dev-env: the reference
implementation of the AT Protocol, which validates every app.bsky.feed.post record against its
lexicon): each post is read back through the PDS's own API (com.atproto.repo.getRecord and
listRecords), never through the adapter or a fake."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostRequest,
    Published,
    PublishFailure,
    RefreshedTokens,
    RetryPolicy,
)
from hopcast_publisher.adapters.platforms.bluesky import COLLECTION, BlueskyAdapter, jwt_expiry
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.link_cards import LinkCardReader
from hopcast_publisher.testing import LOOPBACK_EGRESS, serve
from hopcast_shared.contract import PublishFailureReason
from hopcast_shared.text_rules import rule_for
from hopcast_stack.pds import RunningPds


def _adapter(url: str, link_cards: LinkCardReader | None = None) -> BlueskyAdapter:
    options = AdapterOptions(
        policy=RetryPolicy(max_attempts=4, base_delay_s=0.05, max_delay_s=0.2, deadline_s=30.0),
        http=HttpSettings(connect_timeout_s=5.0, read_timeout_s=15.0),
        egress=LOOPBACK_EGRESS,  # the PDS listens on 127.0.0.1
        rng=random.Random(5),
    )
    return BlueskyAdapter(pds_url=url, options=options, link_cards=link_cards)


MakeAccount = Callable[[str], Awaitable[Any]]
"""The `make_account` fixture (conftest.py): a new PDS account with its session's tokens."""


def _credentials(account: Any, url: str, *, access: str | None = None) -> AccountCredentials:
    return AccountCredentials(
        social_account_id=uuid.uuid4(),
        platform="BLUESKY",
        handle=account.handle,
        external_account_id=account.did,
        api_base_url=url,
        access_token=access or account.access_jwt,
        refresh_token=account.refresh_jwt,
        token_expires_at=jwt_expiry(account.access_jwt),
    )


def _request(text: str, **fields: Any) -> PostRequest:
    return PostRequest(f"hopcast-{uuid.uuid4()}", text, datetime.now(UTC), **fields)


class Refreshes:
    def __init__(self) -> None:
        self.stored: list[RefreshedTokens] = []

    async def __call__(self, account: AccountCredentials, tokens: RefreshedTokens) -> None:
        self.stored.append(tokens)


async def _publish(
    adapter: BlueskyAdapter, credentials: AccountCredentials, request: PostRequest, refreshes: Refreshes | None = None
) -> Published:
    return await adapter.publish(credentials, request, resumed=False, on_refreshed=refreshes or Refreshes())


async def _records(pds: RunningPds, did: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=pds.url, timeout=30) as client:
        answer = await client.get(
            "/xrpc/com.atproto.repo.listRecords", params={"repo": did, "collection": COLLECTION, "limit": 100}
        )
    answer.raise_for_status()
    records: list[dict[str, Any]] = answer.json()["records"]
    return records


async def _record(pds: RunningPds, uri: str) -> dict[str, Any]:
    did, collection, rkey = uri.removeprefix("at://").split("/")
    async with httpx.AsyncClient(base_url=pds.url, timeout=30) as client:
        answer = await client.get(
            "/xrpc/com.atproto.repo.getRecord", params={"repo": did, "collection": collection, "rkey": rkey}
        )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    assert body["uri"] == uri
    return body


async def test_a_post_with_a_link_a_hashtag_and_a_mention_reads_back_exact(
    pds: RunningPds, make_account: MakeAccount
) -> None:
    author = await make_account("hopcast")
    friend = await make_account("alice")
    text = (
        f"Spring menu 🌸 is out: https://example.com/menu?season=spring, #Spring2027 with @{friend.handle} "
        "(and @nobody-here.test, who does not exist)."
    )
    adapter = _adapter(pds.url)
    published = await _publish(adapter, _credentials(author, pds.url), _request(text, language="en"))
    await adapter.close()
    assert published.external_id.startswith(f"at://{author.did}/{COLLECTION}/")

    stored = await _record(pds, published.external_id)
    record = stored["value"]
    assert record["text"] == text  # exactly, byte for byte
    data = text.encode()
    spans = [(data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(), f["features"]) for f in record["facets"]]
    assert spans == [
        (
            "https://example.com/menu?season=spring",
            [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/menu?season=spring"}],
        ),
        ("#Spring2027", [{"$type": "app.bsky.richtext.facet#tag", "tag": "Spring2027"}]),
        (f"@{friend.handle}", [{"$type": "app.bsky.richtext.facet#mention", "did": friend.did}]),
    ]  # @nobody-here.test did not resolve on the PDS: plain text, no facet
    assert record["langs"] == ["en"]
    assert record["embed"]["$type"] == "app.bsky.embed.external"
    assert record["embed"]["external"]["uri"] == "https://example.com/menu?season=spring"
    assert len(await _records(pds, author.did)) == 1


async def _page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A web page with OpenGraph tags, as a linked site serves it."""
    if scope["type"] != "http":
        return
    html = (
        b'<html><head><meta property="og:title" content="Spring menu at Hopcast">'
        b'<meta property="og:description" content="Twelve new dishes."></head><body></body></html>'
    )
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": html})


async def test_the_link_card_shows_the_pages_title_and_description(pds: RunningPds, make_account: MakeAccount) -> None:
    author = await make_account("card")
    async with serve(_page) as site:
        text = f"New: {site}/menu"
        adapter = _adapter(pds.url, LinkCardReader(LOOPBACK_EGRESS, timeout_s=2.0))
        published = await _publish(adapter, _credentials(author, pds.url), _request(text))
        await adapter.close()
    record = (await _record(pds, published.external_id))["value"]
    assert record["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {"uri": f"{site}/menu", "title": "Spring menu at Hopcast", "description": "Twelve new dishes."},
    }
    assert [f["features"][0]["uri"] for f in record["facets"]] == [f"{site}/menu"]


async def test_an_expired_session_is_refreshed_with_refresh_session(pds: RunningPds, make_account: MakeAccount) -> None:
    author = await make_account("refresh")
    # A token the PDS no longer accepts: the session's own, with its signature broken.
    header, payload, signature = author.access_jwt.split(".")
    stale = f"{header}.{payload}.{signature[::-1]}"
    refreshes = Refreshes()
    adapter = _adapter(pds.url)
    stale_account = _credentials(author, pds.url, access=stale)
    published = await _publish(adapter, stale_account, _request("After a refresh"), refreshes)
    await adapter.close()
    (tokens,) = refreshes.stored
    assert tokens.access_token != stale and tokens.refresh_token not in (None, author.refresh_jwt)
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC) + timedelta(minutes=5)
    assert (await _record(pds, published.external_id))["value"]["text"] == "After a refresh"
    async with httpx.AsyncClient(base_url=pds.url, timeout=30) as client:
        # The PDS rotated the refresh token (the old one is still taken for a grace period, so
        # it is not asserted spent): the new one that was handed to be stored works.
        fresh = await client.post(
            "/xrpc/com.atproto.server.refreshSession", headers={"Authorization": f"Bearer {tokens.refresh_token}"}
        )
    assert fresh.status_code == 200 and fresh.json()["did"] == author.did


async def test_exactly_one_record_after_a_lost_response(
    pds: RunningPds, make_account: MakeAccount, losing_proxy: tuple[Any, str]
) -> None:
    proxy, url = losing_proxy
    author = await make_account("lost")
    proxy.lose["/xrpc/com.atproto.repo.createRecord"] = 1
    adapter = _adapter(url)
    text = "Lost in transit #once"
    published = await _publish(adapter, _credentials(author, url), _request(text))
    await adapter.close()
    assert proxy.lost == ["/xrpc/com.atproto.repo.createRecord"]
    # The retry asked first (getRecord of the post's own record key) and found it.
    assert proxy.forwarded.count("/xrpc/com.atproto.repo.createRecord") == 1
    assert "/xrpc/com.atproto.repo.getRecord" in proxy.forwarded
    records = await _records(pds, author.did)
    assert [r["value"]["text"] for r in records] == [text]
    assert records[0]["uri"] == published.external_id


async def test_the_pds_and_our_rule_agree_on_the_300_grapheme_limit(pds: RunningPds, make_account: MakeAccount) -> None:
    author = await make_account("limits")
    fits = "👨‍👩‍👧‍👦" * 300  # 300 graphemes, 7,500 bytes: over the 3,000 bytes
    longest = "é" * 300
    over = "é" * 301
    assert [rule_for("BLUESKY").fits(t) for t in (fits, longest, over)] == [False, True, False]
    adapter = _adapter(pds.url)
    outcomes = []
    for text in (fits, longest, over):
        try:
            await _publish(adapter, _credentials(author, pds.url), _request(text))
            outcomes.append("published")
        except PublishFailure as failure:
            outcomes.append(failure.reason.value)
    await adapter.close()
    rejected = PublishFailureReason.PLATFORM_REJECTED.value
    assert outcomes == [rejected, "published", rejected]
