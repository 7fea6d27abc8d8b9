"""Soft deletion and the purge, on the real database: a post or account deleted and restored, and
what was deleted longer ago than the retention purged, an organization with all its data.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.adapters.retention import purge
from hopcast_shared.db import Database
from hopcast_shared.retention import purge_database

pytestmark = pytest.mark.integration


async def test_soft_delete_restore_and_purge(harness: Any, db: Database) -> None:
    tenant = await harness.tenant()
    account = await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "post", "debit")
    await harness.publish()
    post_id = uuid.UUID((await harness.events("PostPublished"))[0]["data"]["post_id"])
    async with db.transaction() as conn:
        assert await PostRepository().set_post_deleted(conn, post_id, uuid.UUID(tenant.org), True)
        assert await PostRepository().set_post_deleted(conn, post_id, uuid.UUID(tenant.org), False)
        assert await PostRepository().set_post_deleted(conn, post_id, uuid.UUID(tenant.org), True)
    await harness.send(tenant.event("SocialAccountDeleted", social_account_id=account))
    async with db.transaction() as conn:
        assert set((await purge(conn, 30)).values()) == {0}
    await db.pool.execute("UPDATE posts SET deleted_at = now() - interval '31 days'")
    await db.pool.execute("UPDATE social_accounts SET deleted_at = now() - interval '31 days'")
    async with db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts == {
        "posts": 1,
        "pending_posts": 0,
        "brand_accounts": 0,
        "social_accounts": 1,
        "media_uploads": 0,
        "run_deadlines": 0,
        "brands": 0,
        "organizations": 0,
    }
    assert await db.pool.fetchval("SELECT count(*) FROM brand_accounts") == 0


async def test_purge_deletes_an_organization_deleted_longer_ago_than_the_retention_with_all_its_data(
    harness: Any, db: Database
) -> None:
    async def publish_one(tenant: Any) -> None:
        await tenant.account("BLUESKY", default=True)
        await harness.deliver(tenant.post_events(platforms=["BLUESKY"]), "post", "debit")
        await harness.publish()

    old, recent, live = [await harness.tenant() for _ in range(3)]
    for tenant in (old, recent, live):
        await publish_one(tenant)
    gone_brand = live.brand  # a brand deleted long ago goes, with its links, pending posts and posts
    live.brand = str(uuid.uuid4())
    await harness.send(live.event("BrandProfileCreated", brand_profile_id=live.brand))
    await publish_one(live)
    await harness.send(live.event("BrandProfileDeleted", brand_profile_id=gone_brand))
    for tenant in (old, recent):
        await harness.send(tenant.event("OrganizationDeleted"))
    await db.pool.execute("UPDATE organizations SET deleted_at = now() - interval '31 days' WHERE id = $1", old.org)
    await db.pool.execute("UPDATE brands SET deleted_at = now() - interval '31 days' WHERE id = $1", gone_brand)

    async with db.transaction() as conn:
        # The service's purge with the kernel's housekeeping, as the purge job runs it.
        counts = await purge_database(conn, purge, older_than_days=30, inbox_days=30)
    assert counts is not None
    assert counts["organizations"] == 1 and counts["brands"] == 2  # the old organization's and the live one's
    assert counts["posts"] == 2 and counts["pending_posts"] == 2 and counts["social_accounts"] == 1

    async def orgs_in(table: str, column: str = "organization_id") -> set[str]:
        return {str(r[0]) for r in await db.pool.fetch(f"SELECT DISTINCT {column} FROM {table}")}

    for table in ("posts", "pending_posts", "social_accounts", "brand_accounts", "brands"):
        assert await orgs_in(table) == {recent.org, live.org}, table
    assert await orgs_in("organizations", "id") == {recent.org, live.org}
    brands_left = {str(r[0]) for r in await db.pool.fetch("SELECT brand_profile_id FROM posts")}
    assert gone_brand not in brands_left and live.brand in brands_left
    # Nothing of it is left (accounts and their tokens included) but outbox rows, which go once Kafka has them.
    assert old.org not in await harness.all_text(but=("outbox",))
