"""After publishing, on the real database: reported engagement updates the post and is announced
(an older report changes nothing), and the HTTP reads show posts, pending posts and how angles
and platforms perform.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_publisher.adapters.posts import PostRepository
from hopcast_publisher.entrypoints.http import routes

pytestmark = pytest.mark.integration


async def test_engagement_updates_the_post_and_is_announced(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY"])
    await harness.deliver(post, "post", "debit")
    await harness.publish()
    post_id = (await harness.events("PostPublished"))[0]["data"]["post_id"]

    def reported(observed_at: str, likes: int, comments: int, shares: int, impressions: int) -> Any:
        counts = {"likes": likes, "comments": comments, "shares": shares, "impressions": impressions}
        return tenant.event("EngagementReported", post_id=post_id, observed_at=observed_at, **counts)

    report = reported("2027-03-15T07:00:00Z", likes=30, comments=5, shares=5, impressions=800)
    older = reported("2027-03-14T08:00:00Z", likes=1, comments=0, shares=0, impressions=10)
    assert await harness.send(report) == "handled"
    assert await harness.send(older) == "handled"
    updates = await harness.events("EngagementUpdated", "t.analytics.events")
    assert len(updates) == 1
    data = updates[0]["data"]
    assert data["engagement_rate"] == pytest.approx(40 / 800)
    assert (data["brand_profile_id"], data["platform"], data["angle"]) == (tenant.brand, "BLUESKY", "USER_BENEFIT")
    post = await PostRepository().post(harness.db.pool, uuid.UUID(post_id))  # type: ignore[arg-type]
    assert post is not None and (post.likes, post.impressions) == (30, 800)
    unknown = tenant.event("EngagementReported", post_id=str(uuid.uuid4()))
    assert await harness.send(unknown) == "dead_lettered"


async def test_http_reads(harness: Any) -> None:
    tenant = await harness.tenant()
    await tenant.account("BLUESKY", default=True)
    post = tenant.post_events(platforms=["BLUESKY", "LINKEDIN"])
    await harness.deliver(post, "post", "debit")
    await harness.publish()
    post_id = (await harness.events("PostPublished"))[0]["data"]["post_id"]
    await harness.send(
        tenant.event("EngagementReported", post_id=post_id, likes=8, comments=1, shares=1, impressions=100)
    )

    class Runtime:
        db = harness.db

    handlers = {r.template: r.handler for r in routes(Runtime())}  # type: ignore[arg-type]
    angles = await handlers["/brands/{id}/angle-performance"]({"id": tenant.brand}, {})
    assert angles.status == 200
    assert angles.body["angles"] == [
        {
            "angle": "USER_BENEFIT",
            "posts": 1,
            "likes": 8,
            "comments": 1,
            "shares": 1,
            "impressions": 100,
            "engagement_rate": 0.1,
            "avg_engagement_rate": 0.1,
        }
    ]
    platforms = await handlers["/organizations/{id}/platform-performance"]({"id": tenant.org}, {"days": "7"})
    assert [p["platform"] for p in platforms.body["platforms"]] == ["BLUESKY"]
    pending = await handlers["/pending-posts/{id}"]({"id": post["pending_post_id"]}, {})
    assert pending.body["status"] == "PARTIALLY_PUBLISHED"
    results = {r["platform"]: r for r in pending.body["platform_results"]}
    assert (
        results["BLUESKY"]["post_id"] == post_id and results["LINKEDIN"]["failure_reason"] == "NO_ACCOUNT_FOR_PLATFORM"
    )
    one = await handlers["/posts/{id}"]({"id": post_id}, {})
    assert one.status == 200 and one.body["engagement_rate"] == 0.1
    assert (await handlers["/posts/{id}"]({"id": str(uuid.uuid4())}, {})).status == 404
    waiting = tenant.post_events(platforms=["BLUESKY"], requires_approval=True)
    await harness.deliver(waiting, "post")
    status = await handlers["/pending-posts/{id}"]({"id": waiting["pending_post_id"]}, {})
    assert status.body["waiting_for"] == ["CreditsDebited", "PendingPostApproved"]
