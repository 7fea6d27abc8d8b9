"""The remembered media uploads in the publisher's database (migration 0007): one per
organization, account and upload key, the first replica's kept when two store at once, an
expired one replaced, and a post resumed by another replica reusing them."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hopcast_publisher.adapters.media_uploads import PostgresMediaUploads, UploadKey, upload_key
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostMedia,
    PostRequest,
    PublishFailure,
    RetryPolicy,
)
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.media import MediaOptions
from hopcast_publisher.adapters.platforms.media_fetch import MediaFetcher
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, Fault, serve
from hopcast_publisher.testing_media import MediaServer, MediaX, image_bytes
from hopcast_shared.db import Database


def _key(org: uuid.UUID, account: uuid.UUID, digest: str = "ab" * 32) -> UploadKey:
    return UploadKey(org, account, "BLUESKY", upload_key(digest), digest)


async def test_the_first_replica_to_store_an_upload_wins(db: Database) -> None:
    replicas = [PostgresMediaUploads(db) for _ in range(4)]
    key = _key(uuid.uuid4(), uuid.uuid4())
    assert await replicas[0].find(key) is None
    kept = await asyncio.gather(
        *(r.remember(key, {"blob": {"ref": f"replica-{i}"}}, timedelta(hours=1)) for i, r in enumerate(replicas))
    )
    assert len({k["blob"]["ref"] for k in kept}) == 1  # every replica uses the one stored
    assert await replicas[3].find(key) == kept[0]
    rows = await db.pool.fetchval(
        "SELECT count(*) FROM media_uploads WHERE social_account_id = $1", key.social_account_id
    )
    assert rows == 1


async def test_uploads_are_an_organizations_and_an_accounts_own(db: Database) -> None:
    uploads = PostgresMediaUploads(db)
    org, account = uuid.uuid4(), uuid.uuid4()
    await uploads.remember(_key(org, account), {"id": "m1"}, timedelta(hours=1))
    assert await uploads.find(_key(uuid.uuid4(), account)) is None  # another organization
    assert await uploads.find(_key(org, uuid.uuid4())) is None  # another account
    assert await uploads.find(_key(org, account, "cd" * 32)) is None  # other bytes
    assert await uploads.find(_key(org, account)) == {"id": "m1"}


async def test_an_expired_upload_is_not_reused_and_is_replaced(db: Database) -> None:
    uploads = PostgresMediaUploads(db)
    key = _key(uuid.uuid4(), uuid.uuid4())
    await uploads.remember(key, {"id": "old"}, timedelta(seconds=-1))
    assert await uploads.find(key) is None
    assert await uploads.remember(key, {"id": "new"}, timedelta(hours=1)) == {"id": "new"}
    assert await uploads.find(key) == {"id": "new"}


async def test_a_replica_resuming_a_post_uses_the_uploads_another_replica_made(db: Database) -> None:
    """Replica A uploads the image to X and dies before the post goes out (X answers 503 every
    time); replica B, with its own adapter and the same database, posts it: one upload, one post."""
    fake, files = MediaX(), MediaServer()
    files.files["/cup.png"] = (image_bytes(640, 480), "image/png")
    account = AccountCredentials(
        uuid.uuid4(), "TWITTER", "@hopcast", MediaX.user_id, None, "good-access", organization_id=uuid.uuid4()
    )
    async with serve(fake) as url, serve(files) as media_url:
        request = PostRequest(
            f"key-{uuid.uuid4()}",
            "Spring menu",
            datetime.now(UTC),
            media=(PostMedia(f"{media_url}/cup.png", "A cup", "image/png"),),
        )

        def replica() -> XAdapter:
            media = MediaOptions(MediaFetcher(LOOPBACK_EGRESS), PostgresMediaUploads(db), poll_interval_s=0.01)
            policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02, deadline_s=10.0)
            return XAdapter(api_url=url, options=AdapterOptions(policy=policy, egress=LOOPBACK_EGRESS, media=media))

        async def nothing(*_: object) -> None:
            return None

        first, second = replica(), replica()
        fake.fail_next(Fault(status=503), Fault(status=503))
        with pytest.raises(PublishFailure):
            await first.publish(account, request, resumed=False, on_refreshed=nothing)
        published = await second.publish(account, request, resumed=True, on_refreshed=nothing)
        await first.close()
        await second.close()
    assert fake.uploads == 1 and len(fake.posts) == 1
    assert fake.posts[0]["media_ids"] == [published_media_id(fake)]
    assert published.external_id == fake.posts[0]["id"]
    stored = await db.pool.fetchval(
        "SELECT count(*) FROM media_uploads WHERE social_account_id = $1", account.social_account_id
    )
    assert stored == 1


def published_media_id(fake: MediaX) -> str:
    (media_id,) = fake.media
    return media_id
