"""What a run decides, on the real database: a ScheduleDue drafts one post from a ready material
(however often it comes), waiting for approval on a manual schedule, or is skipped with its
reason and ended; ids of another organization are dead-lettered. Given these events, expect
those rows and those events in the outbox (the relay is not running here; the Kafka path is in
test_runs_through_kafka.py; the harness in conftest.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.bootstrap import build_deps, definition
from hopcast_content.config import ContentSettings
from hopcast_shared.contract import Angle

pytestmark = pytest.mark.integration


async def test_a_due_run_drafts_a_post_from_a_ready_material(h: Any, texts: Any) -> None:
    t = await h.tenant()
    material_id = await t.material(texts.a, title="Why we roast on Tuesdays", content_pillar="behind the scenes")
    row = await h.db.pool.fetchrow("SELECT * FROM materials WHERE id = $1", uuid.UUID(material_id))
    assert row["status"] == "READY" and row["content_hash"]
    found = await t.run()
    post = h.drafted(found)
    data = post["data"]
    assert post["_topic"] == "t.content.events" and post["correlationid"] == data["run_id"]
    assert data["material_id"] == material_id and data["due_at"] == "2027-03-14T09:00:00Z"
    assert data["angle"] in {a.value for a in Angle} and len(data["angle_reason"]) > 20
    assert 0.0 <= data["max_similarity"] <= 0.85 and data["requires_approval"] is False
    assert "less than a week old" in data["content"] and len(data["content"]) <= 280
    assert data["hashtags"] == ["#coffee", "#homebarista"] and data["platforms"] == ["TWITTER", "LINKEDIN"]
    assert found["ScheduleRunCompleted"] == []  # the run goes on: billing, then the publisher
    kinds = await h.db.pool.fetch("SELECT kind FROM content_embeddings ORDER BY kind")
    assert [r["kind"] for r in kinds] == ["MATERIAL", "PENDING_POST"]


async def test_one_schedule_due_gives_at_most_one_draft_however_often_it_comes(h: Any, texts: Any) -> None:
    t = await h.tenant()
    await t.material(texts.a)
    await t.material(texts.b)
    event = t.due()
    outcomes = [await h.send(event, "scheduler.events") for _ in range(3)]
    assert outcomes == ["handled", "duplicate", "duplicate"]
    # The same run in a new envelope (a producer retry with a new event id) changes nothing either.
    again = t.due(run_id=str(event.data["run_id"]))
    assert await h.send(again, "scheduler.events") == "handled"
    assert len((await t.outcome(event.data["run_id"]))["PendingPostCreated"]) == 1
    assert await h.db.pool.fetchval("SELECT count(*) FROM pending_posts") == 1


async def test_manual_schedules_need_approval(h: Any, texts: Any) -> None:
    t = await h.tenant(generation_mode="manual")
    await t.material(texts.a)
    assert h.drafted(await t.run())["data"]["requires_approval"] is True


async def test_no_ready_material(h: Any, texts: Any) -> None:
    t = await h.tenant()
    h.skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    failed = await t.material("", type="TEXT", media_urls=["https://cdn.example/a.png"])
    archived = await t.material(texts.b)
    deleted = await t.material(texts.c)
    assert await h.send(t.event("MaterialArchived", material_id=archived)) == "handled"
    assert await h.send(t.event("MaterialDeleted", material_id=deleted)) == "handled"
    row = await h.db.pool.fetchrow("SELECT status, failure_reason FROM materials WHERE id = $1", uuid.UUID(failed))
    assert row["status"] == "FAILED" and "needs a title or a body" in row["failure_reason"]
    h.skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    assert await h.send(t.event("MaterialRestored", material_id=deleted)) == "handled"
    assert h.drafted(await t.run())["data"]["material_id"] == deleted


async def test_inactive_brand_and_organization(h: Any, texts: Any) -> None:
    t = await h.tenant()
    await t.material(texts.a)
    h.skipped(await t.run(brand_profile_id=str(uuid.uuid4())), "BRAND_INACTIVE", "BRAND_INACTIVE")
    assert await h.send(t.event("BrandProfileDeleted", brand_profile_id=t.brand)) == "handled"
    h.skipped(await t.run(), "BRAND_INACTIVE", "BRAND_INACTIVE")
    assert await h.send(t.event("BrandProfileRestored", brand_profile_id=t.brand)) == "handled"
    assert await h.send(t.event("OrganizationDeleted")) == "handled"
    h.skipped(await t.run(), "ORGANIZATION_INACTIVE", "ORGANIZATION_INACTIVE")
    assert await h.send(t.event("OrganizationRestored")) == "handled"
    assert h.drafted(await t.run())
    # Another organization's brand is inactive for this one, whatever it holds.
    other = await h.tenant()
    await other.material(texts.b)
    h.skipped(await t.run(brand_profile_id=other.brand), "BRAND_INACTIVE", "BRAND_INACTIVE")


async def test_ids_of_another_organization_are_dead_lettered(h: Any, texts: Any) -> None:
    a = await h.tenant()
    b = await h.tenant()
    material_id = await a.material(texts.a)
    steal = b.event("MaterialSubmitted", material_id=material_id, brand_profile_id=b.brand, body=texts.b)
    assert await h.send(steal) == "dead_lettered"
    assert await h.send(b.event("MaterialDeleted", material_id=material_id)) == "dead_lettered"
    assert await h.send(b.event("BrandProfileUpdated", brand_profile_id=a.brand)) == "dead_lettered"
    letters = await h.dead_letters()
    assert len(letters) == 3 and "another organization" in letters[0]["error"]
    row = await h.db.pool.fetchrow(
        "SELECT organization_id, body, deleted_at FROM materials WHERE id = $1", uuid.UUID(material_id)
    )
    assert str(row["organization_id"]) == a.org and row["body"] == texts.a and row["deleted_at"] is None


def test_the_definition_consumes_what_content_needs() -> None:
    d = definition(build_deps(ContentSettings(), embedder=HashingEmbedder(384)))
    assert d.name == "content" and set(d.consumes) == {
        "upstream.events",
        "scheduler.events",
        "publisher.events",
        "analytics.events",
    }
    assert {"ScheduleDue", "MaterialSubmitted", "PostPublished", "ScheduleRunCompleted", "EngagementUpdated"} <= set(
        d.handlers
    )
