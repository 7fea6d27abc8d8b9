"""PostDeleted and PostRestored in content, on the real database through the consumer: a
deleted post stops counting for weighted selection (its material's engagement) and angle
learning until restored; another organization's post, or one content never saw, is refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.posts import Posts
from hopcast_shared.contract import Angle

pytestmark = pytest.mark.integration


async def _published(h: Any, t: Any, material_id: str, rate: float) -> str:
    post_id = str(uuid.uuid4())
    published = t.event("PostPublished", post_id=post_id, material_id=material_id, brand_profile_id=t.brand)
    assert await h.send(published, "publisher.events") == "handled"
    engagement = t.event(
        "EngagementUpdated", post_id=post_id, brand_profile_id=t.brand, angle="USER_BENEFIT", engagement_rate=rate
    )
    assert await h.send(engagement, "analytics.events") == "handled"
    return post_id


async def _weights(h: Any, t: Any) -> tuple[dict[str, float | None], Any]:
    """Each selectable material's engagement (what weighted selection weighs) and the
    USER_BENEFIT angle's stats (what angle learning draws from)."""
    brand, org = uuid.UUID(t.brand), uuid.UUID(t.org)
    selectable = await Materials(h.db.pool).selectable_candidates([(brand, org)])
    stats = (await Posts(h.db.pool).angle_stats([(brand, org)]))[brand]
    return {str(c.material_id): c.engagement for c in selectable.get(brand, [])}, stats.get(Angle.USER_BENEFIT)


async def test_a_deleted_post_stops_counting_for_selection_and_angles_until_restored(h: Any, texts: Any) -> None:
    t = await h.tenant(material_strategy="weighted")
    hot = await t.material(texts.a, max_uses=None)
    cold = await t.material(texts.b, max_uses=None)
    hot_post = await _published(h, t, hot, 0.2)
    await _published(h, t, cold, 0.002)
    weights, angle = await _weights(h, t)
    assert weights[hot] == pytest.approx(0.2) and angle.posts == 2

    assert await h.send(t.event("PostDeleted", post_id=hot_post)) == "handled"
    weights, angle = await _weights(h, t)
    assert weights[hot] is None and weights[cold] == pytest.approx(0.002)
    assert angle.posts == 1 and angle.mean_rate == pytest.approx(0.002)

    # Engagement of a deleted post is still recorded, and counts once it is restored.
    later = t.event("EngagementUpdated", post_id=hot_post, brand_profile_id=t.brand, engagement_rate=0.3)
    assert await h.send(later, "analytics.events") == "handled"
    assert (await _weights(h, t))[0][hot] is None
    assert await h.send(t.event("PostDeleted", post_id=hot_post)) == "handled"  # again: still deleted

    assert await h.send(t.event("PostRestored", post_id=hot_post)) == "handled"
    weights, angle = await _weights(h, t)
    assert weights[hot] == pytest.approx(0.3) and angle.posts == 2
    assert await h.dead_letters() == []


async def test_a_run_learns_nothing_from_deleted_posts_and_again_once_restored(h: Any, texts: Any) -> None:
    """The angle reason of a run's draft says what the brand's posts taught: with every post
    deleted there is nothing measured; with one restored there is."""
    t = await h.tenant()
    material = await t.material(texts.a, max_uses=None)
    posts = [await _published(h, t, material, 0.05) for _ in range(3)]
    for post_id in posts:
        assert await h.send(t.event("PostDeleted", post_id=post_id)) == "handled"
    data = h.drafted(await t.run())["data"]
    assert data["angle_reason"].startswith("No engagement measured for this brand yet")
    await t.end(data["run_id"], "REJECTED")

    assert await h.send(t.event("PostRestored", post_id=posts[0])) == "handled"
    data = h.drafted(await t.run())["data"]
    assert not data["angle_reason"].startswith("No engagement measured")
    assert "5.0%" in data["angle_reason"]  # the restored post's rate, for the angle or as the brand's average


async def test_another_organizations_post_or_an_unknown_one_is_refused(h: Any, texts: Any) -> None:
    owner, other = await h.tenant(), await h.tenant()
    material = await owner.material(texts.a, max_uses=None)
    post_id = await _published(h, owner, material, 0.1)
    unknown = str(uuid.uuid4())
    for event in (
        other.event("PostDeleted", post_id=post_id),
        other.event("PostRestored", post_id=post_id),
        owner.event("PostDeleted", post_id=unknown),
    ):
        assert await h.send(event) == "dead_lettered", event.type
    errors = [d["error"] for d in await h.dead_letters()]
    assert [e.split(": ", 1)[-1] for e in errors] == [
        f"post {post_id} belongs to another organization",
        f"post {post_id} belongs to another organization",
        f"unknown post {unknown} for this organization",
    ]
    deleted = await h.db.pool.fetchval("SELECT deleted_at FROM posts WHERE post_id = $1", uuid.UUID(post_id))
    assert deleted is None
    assert (await _weights(h, owner))[0][material] == pytest.approx(0.1)
