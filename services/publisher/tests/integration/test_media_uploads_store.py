"""The remembered media uploads in the publisher's database (migration 0007): one per
organization, account and upload key, the first replica's kept when two store at once, an
expired one replaced."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from hopcast_publisher.adapters.media_uploads import PostgresMediaUploads, UploadKey, upload_key
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
