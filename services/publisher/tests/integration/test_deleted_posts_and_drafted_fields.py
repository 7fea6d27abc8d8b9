"""Issue 22 in the publisher, on the real database through the consumer and the HTTP reads: a
post keeps its pending post's hashtags, media and angle reason (served by GET /posts/{id} and
sent in PostPublished); PostDeleted hides a post from the analytics reads and its engagement
updates, PostRestored shows it again; another organization's post is refused, by the events
and by the operator's commands."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.entrypoints.http import routes

pytestmark = pytest.mark.integration

MEDIA = [{"url": "https://cdn.example/roast.jpg", "alt_text": "Beans cooling in a tray", "mime_type": "image/jpeg"}]


def _reads(harness: Any) -> dict[str, Any]:
    class Runtime:
        db = harness.db

    return {r.template: r.handler for r in routes(Runtime())}  # type: ignore[arg-type]


async def _published(harness: Any, tenant: Any, **post: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One post published on Bluesky: the pending post's events and the PostPublished."""
    await tenant.account("BLUESKY", default=True)
    events = tenant.post_events(platforms=["BLUESKY"], **post)
    await harness.deliver(events, "post", "debit")
    await harness.publish()
    [published] = [
        e
        for e in await harness.events("PostPublished", "t.publisher.events")
        if e["data"]["run_id"] == events["run_id"]
    ]
    return events, published["data"]


async def test_a_post_keeps_its_drafts_hashtags_media_and_angle_reason(harness: Any) -> None:
    tenant = await harness.tenant()
    events, published = await _published(harness, tenant, media=MEDIA)
    draft = events["post"].data
    expected = {"hashtags": draft["hashtags"], "media": MEDIA, "angle_reason": draft["angle_reason"]}
    assert draft["hashtags"] and draft["angle_reason"]
    assert {k: published[k] for k in expected} == expected
    [analytics] = await harness.events("PostPublished", "t.analytics.events")
    assert {k: analytics["data"][k] for k in expected} == expected
    read = await _reads(harness)["/posts/{id}"]({"id": published["post_id"]}, {})
    assert read.status == 200 and read.organization == uuid.UUID(tenant.org)
    assert {k: read.body[k] for k in expected} == expected


async def test_a_post_from_before_has_no_hashtags_and_no_angle_reason(harness: Any) -> None:
    """Rows written before migration 0011 read back empty, and their PostPublished-less read works."""
    tenant = await harness.tenant()
    post_id = uuid.uuid4()
    await harness.db.pool.execute(
        """
        INSERT INTO posts (id, organization_id, pending_post_id, run_id, schedule_id, brand_profile_id, material_id,
                           social_account_id, platform, angle, content, external_id, external_url, published_at)
        VALUES ($1, $2, $3, $3, $3, $4, $3, $3, 'TWITTER', 'STORYTELLING', 'text', 'x1', 'https://x.example/1', $5)
        """,
        post_id,
        uuid.UUID(tenant.org),
        uuid.uuid4(),
        uuid.UUID(tenant.brand),
        datetime(2027, 3, 14, tzinfo=UTC),
    )
    read = await _reads(harness)["/posts/{id}"]({"id": str(post_id)}, {})
    assert read.status == 200
    assert (read.body["hashtags"], read.body["media"], read.body["angle_reason"]) == ([], [], None)


async def test_a_deleted_post_is_hidden_from_analytics_until_restored(harness: Any) -> None:
    tenant = await harness.tenant()
    _, published = await _published(harness, tenant)
    post_id = published["post_id"]
    reads = _reads(harness)

    async def report(likes: int, observed_at: str) -> None:
        event = tenant.event(
            "EngagementReported",
            post_id=post_id,
            likes=likes,
            comments=0,
            shares=0,
            impressions=100,
            observed_at=observed_at,
        )
        assert await harness.send(event) == "handled"

    async def shown() -> tuple[list[Any], list[Any], Any]:
        angles = await reads["/brands/{id}/angle-performance"]({"id": tenant.brand}, {})
        platforms = await reads["/organizations/{id}/platform-performance"]({"id": tenant.org}, {"days": "7"})
        post = await reads["/posts/{id}"]({"id": post_id}, {})
        return angles.body["angles"], platforms.body["platforms"], post.body["deleted_at"]

    await report(10, "2027-03-15T07:00:00Z")
    angles, platforms, deleted_at = await shown()
    assert [a["likes"] for a in angles] == [10] and [p["platform"] for p in platforms] == ["BLUESKY"]
    assert deleted_at is None

    assert await harness.send(tenant.event("PostDeleted", post_id=post_id)) == "handled"
    angles, platforms, deleted_at = await shown()
    assert (angles, platforms) == ([], []) and deleted_at is not None
    await report(20, "2027-03-16T07:00:00Z")  # recorded, but not announced while deleted
    assert len(await harness.events("EngagementUpdated", "t.analytics.events")) == 1

    assert await harness.send(tenant.event("PostRestored", post_id=post_id)) == "handled"
    angles, platforms, deleted_at = await shown()
    assert [a["likes"] for a in angles] == [20] and deleted_at is None
    await report(30, "2027-03-17T07:00:00Z")
    updates = await harness.events("EngagementUpdated", "t.analytics.events")
    assert [u["data"]["likes"] for u in updates] == [10, 30]
    assert await harness.dead_letters() == []


async def test_another_organizations_post_or_an_unknown_one_is_refused(harness: Any) -> None:
    owner, other = await harness.tenant(), await harness.tenant()
    _, published = await _published(harness, owner)
    post_id, unknown = published["post_id"], str(uuid.uuid4())
    for event in (
        other.event("PostDeleted", post_id=post_id),
        other.event("PostRestored", post_id=post_id),
        owner.event("PostDeleted", post_id=unknown),
    ):
        assert await harness.send(event) == "dead_lettered", event.type
    assert [d["error"] for d in await harness.dead_letters()] == [
        f"PermanentError: post {post_id} belongs to another organization",
        f"PermanentError: post {post_id} belongs to another organization",
        f"PermanentError: unknown post {unknown} for this organization",
    ]
    read = await _reads(harness)["/posts/{id}"]({"id": post_id}, {})
    assert read.body["deleted_at"] is None


async def test_the_operators_delete_and_restore_are_scoped_by_organization(harness: Any) -> None:
    owner, other = await harness.tenant(), await harness.tenant()
    _, published = await _published(harness, owner)
    post_id = published["post_id"]
    env = {**os.environ, "PUBLISHER_DATABASE_URL": harness.db.url, "HOPCAST_ENV": "test"}
    cli = [sys.executable, "-c", "from hopcast_publisher.entrypoints.cli import app; app()"]

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run, [*cli, *args], env=env, capture_output=True, text=True, timeout=120
        )

    async def deleted() -> bool:
        read = await _reads(harness)["/posts/{id}"]({"id": post_id}, {})
        return read.body["deleted_at"] is not None

    unscoped = await run("delete-post", post_id)
    assert unscoped.returncode == 2 and "--organization" in unscoped.stderr
    wrong = await run("delete-post", post_id, "--organization", other.org)
    assert wrong.returncode == 1 and f"no post {post_id} in organization {other.org}" in wrong.stderr
    assert not await deleted()
    done = await run("delete-post", post_id, "--organization", owner.org)
    assert done.returncode == 0 and await deleted()
    assert (await run("restore-post", post_id, "--organization", other.org)).returncode == 1 and await deleted()
    assert (await run("restore-post", post_id, "--organization", owner.org)).returncode == 0
    assert not await deleted()
