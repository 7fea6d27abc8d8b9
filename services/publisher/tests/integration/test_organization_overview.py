"""The publisher's part of an organization's overview (issue 22): its posts of the last 30 days
by platform, read through the kernel's HTTP layer with tokens on the real database, after
publishing through the harness."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_publisher.entrypoints.http import routes

pytestmark = pytest.mark.integration


async def test_the_overview_counts_posts_of_the_last_30_days_by_platform(harness: Any, http_reads: Any) -> None:
    tenant = await harness.tenant()
    other = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    await tenant.account("LINKEDIN", default=True)
    await other.account("BLUESKY", default=True)
    for t, platforms in (
        (tenant, ["BLUESKY", "LINKEDIN"]),
        (tenant, ["BLUESKY"]),
        (tenant, ["BLUESKY"]),
        (other, ["BLUESKY"]),
    ):
        await harness.deliver(t.post_events(platforms=platforms), "post", "debit")
    await harness.publish()
    org = uuid.UUID(tenant.org)
    # One post published 40 days ago, one deleted: neither counts.
    old, deleted = [
        r["id"]
        for r in await harness.db.pool.fetch(
            "SELECT id FROM posts WHERE organization_id = $1 AND platform = 'BLUESKY' ORDER BY id LIMIT 2", org
        )
    ]
    await harness.db.pool.execute("UPDATE posts SET published_at = now() - interval '40 days' WHERE id = $1", old)
    await harness.db.pool.execute("UPDATE posts SET deleted_at = now() WHERE id = $1", deleted)

    class Runtime:
        db = harness.db

    reads = http_reads(routes(Runtime()))  # type: ignore[arg-type]
    status, body = await reads.get(f"/organizations/{tenant.org}/overview", organizations=[tenant.org])
    assert status == 200, body
    assert body == {
        "organization_id": tenant.org,
        "days": 30,
        "posts": 2,
        "posts_by_platform": {"BLUESKY": 1, "LINKEDIN": 1},
    }
    status, body = await reads.get(f"/organizations/{tenant.org}/overview?days=60", organizations=[tenant.org])
    assert (status, body["posts_by_platform"]) == (200, {"BLUESKY": 2, "LINKEDIN": 1})
    status, body = await reads.get(f"/organizations/{other.org}/overview", organizations=[other.org])
    assert (status, body["posts"], body["posts_by_platform"]) == (200, 1, {"BLUESKY": 1})


async def test_another_organizations_overview_is_404_and_no_token_401(harness: Any, http_reads: Any) -> None:
    a, b = await harness.tenant(), await harness.tenant()

    class Runtime:
        db = harness.db

    reads = http_reads(routes(Runtime()))  # type: ignore[arg-type]
    assert await reads.get(f"/organizations/{b.org}/overview", organizations=[a.org]) == (404, {"error": "not found"})
    assert (await reads.get(f"/organizations/{b.org}/overview"))[0] == 401
    assert (await reads.get(f"/organizations/{a.org}/overview?days=0", organizations=[a.org]))[0] == 400
