"""Images through the real Bluesky adapter to a real PDS (@atproto/dev-env, which validates the
app.bsky.embed.images embed against its lexicon and stores the blobs): a post with two images
and their alt texts, read back through the PDS's own API (com.atproto.repo.getRecord and
com.atproto.sync.getBlob), never through the adapter or a fake.

The images are made here with Pillow and served on 127.0.0.1 by a small media host; the
adapter fetches them through the egress guard with the loopback allowance of tests and local
trials (`LOOPBACK_EGRESS`, as for the PDS itself), never the production policy."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from hopcast_publisher.adapters.media_uploads import MemoryMediaUploads
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostMedia,
    PostRequest,
    PublishFailure,
    RefreshedTokens,
    RetryPolicy,
)
from hopcast_publisher.adapters.platforms.bluesky import COLLECTION, BlueskyAdapter, jwt_expiry
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.media import MediaOptions
from hopcast_publisher.adapters.platforms.media_fetch import MediaFetcher
from hopcast_publisher.testing import LOOPBACK_EGRESS, serve
from hopcast_publisher.testing_media import MediaServer, image_bytes
from hopcast_shared.contract import PublishFailureReason
from hopcast_stack.pds import RunningPds

MakeAccount = Callable[[str], Awaitable[Any]]


def _adapter(url: str) -> BlueskyAdapter:
    options = AdapterOptions(
        policy=RetryPolicy(max_attempts=4, base_delay_s=0.05, max_delay_s=0.2, deadline_s=30.0),
        http=HttpSettings(connect_timeout_s=5.0, read_timeout_s=15.0),
        egress=LOOPBACK_EGRESS,  # the PDS and the media host listen on 127.0.0.1
        rng=random.Random(11),
        media=MediaOptions(MediaFetcher(LOOPBACK_EGRESS), MemoryMediaUploads()),
    )
    return BlueskyAdapter(pds_url=url, options=options)


def _credentials(account: Any, url: str) -> AccountCredentials:
    return AccountCredentials(
        social_account_id=uuid.uuid4(),
        platform="BLUESKY",
        handle=account.handle,
        external_account_id=account.did,
        api_base_url=url,
        access_token=account.access_jwt,
        refresh_token=account.refresh_jwt,
        token_expires_at=jwt_expiry(account.access_jwt),
        organization_id=uuid.uuid4(),
    )


async def _kept(account: AccountCredentials, tokens: RefreshedTokens) -> None:
    return None


async def test_a_post_with_two_images_and_their_alt_texts_reads_back_intact(
    pds: RunningPds, make_account: MakeAccount
) -> None:
    author = await make_account("hopcast")
    landscape = image_bytes(1200, 800, kind="PNG", seed=3)
    portrait = image_bytes(600, 900, kind="JPEG", seed=7)
    files = MediaServer()
    files.files["/menu.png"] = (landscape, "image/png")
    files.files["/barista.jpg"] = (portrait, "application/octet-stream")  # a careless server
    async with serve(files) as media_url:
        media = (
            PostMedia(f"{media_url}/menu.png", "The spring menu, handwritten on a chalkboard", "image/png"),
            PostMedia(f"{media_url}/barista.jpg", "A barista pouring latte art", None),
        )
        request = PostRequest(f"hopcast-{uuid.uuid4()}", "Spring is here 🌸", datetime.now(UTC), media=media)
        adapter = _adapter(pds.url)
        published = await adapter.publish(_credentials(author, pds.url), request, resumed=False, on_refreshed=_kept)
        await adapter.close()

    did, collection, rkey = published.external_id.removeprefix("at://").split("/")
    assert (did, collection) == (author.did, COLLECTION)
    async with httpx.AsyncClient(base_url=pds.url, timeout=30) as client:
        stored = await client.get(
            "/xrpc/com.atproto.repo.getRecord", params={"repo": did, "collection": collection, "rkey": rkey}
        )
        stored.raise_for_status()
        record = stored.json()["value"]
        assert record["text"] == "Spring is here 🌸"
        embed = record["embed"]
        assert embed["$type"] == "app.bsky.embed.images"
        images = embed["images"]
        assert [i["alt"] for i in images] == [m.alt_text for m in media]
        assert [i["aspectRatio"] for i in images] == [{"width": 1200, "height": 800}, {"width": 600, "height": 900}]
        assert [i["image"]["mimeType"] for i in images] == ["image/png", "image/jpeg"]
        assert [i["image"]["size"] for i in images] == [len(landscape), len(portrait)]
        for image, original in zip(images, (landscape, portrait), strict=True):
            blob = await client.get(
                "/xrpc/com.atproto.sync.getBlob", params={"did": did, "cid": image["image"]["ref"]["$link"]}
            )
            blob.raise_for_status()
            assert blob.content == original  # byte for byte
        listed = await client.get(
            "/xrpc/com.atproto.repo.listRecords", params={"repo": did, "collection": COLLECTION, "limit": 10}
        )
        assert len(listed.json()["records"]) == 1


async def test_an_image_over_the_blob_limit_is_refused_before_any_upload(
    pds: RunningPds, make_account: MakeAccount
) -> None:
    author = await make_account("hopcast")
    files = MediaServer()
    files.files["/big.png"] = (image_bytes(2000, 2000, pad_to=1_000_001), "image/png")
    async with serve(files) as media_url:
        request = PostRequest(
            f"hopcast-{uuid.uuid4()}", "Too big", datetime.now(UTC), media=(PostMedia(f"{media_url}/big.png", "big"),)
        )
        adapter = _adapter(pds.url)
        try:
            await adapter.publish(_credentials(author, pds.url), request, resumed=False, on_refreshed=_kept)
            raise AssertionError("published an image over the lexicon's 1,000,000-byte limit")
        except PublishFailure as failure:
            assert failure.reason is PublishFailureReason.MEDIA_REJECTED
            assert failure.detail == "media 1 of 1: more than 1,000,000 bytes, over the limit of 1,000,000"
        finally:
            await adapter.close()
    async with httpx.AsyncClient(base_url=pds.url, timeout=30) as client:
        listed = await client.get(
            "/xrpc/com.atproto.repo.listRecords", params={"repo": author.did, "collection": COLLECTION}
        )
    assert listed.json()["records"] == []
