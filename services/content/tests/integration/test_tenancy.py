"""No organization touches another's through the ids its events name: each case is either
applied to the sender alone or dead-lettered saying the id is another organization's; never
ignored, and never a change of the owner's rows. On the real database, through the consumer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.posts import Posts
from hopcast_content.bootstrap import CONSUMES, build_deps
from hopcast_content.config import ContentSettings
from hopcast_content.service_layer.dispatch import DISPATCH
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.dispatch import bind
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration

TEXT = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."


@pytest.fixture
def consumer(db: Database) -> EventConsumer:
    return EventConsumer(
        "content",
        db,
        bind(DISPATCH, build_deps(ContentSettings())),
        kafka=KafkaSettings(topic_prefix="t."),
        settings=ServiceSettings(name="content", database_url=db.url, http_port=18082, handler_backoff_initial_s=0.01),
        consumes=CONSUMES,
    )


class Tenant:
    """One organization with a brand, a schedule and a material, through the consumer."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())
        self.schedule_id = str(uuid.uuid4())
        self.material_id = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        return await self.consumer.handle_record(as_record(event, topic=topic))

    async def create(self) -> Tenant:
        for event in (
            self.event("OrganizationCreated"),
            self.event("BrandProfileCreated", brand_profile_id=self.brand),
            self.event("ScheduleCreated", schedule_id=self.schedule_id, brand_profile_id=self.brand),
            self.event(
                "MaterialSubmitted",
                material_id=self.material_id,
                brand_profile_id=self.brand,
                title=None,
                body=TEXT,
                max_uses=None,
            ),
        ):
            assert await self.send(event) == "handled"
        return self

    def due(self, run_id: str | None = None, **changes: Any) -> Any:
        run_id = run_id or str(uuid.uuid4())
        values = {
            "run_id": run_id,
            "schedule_id": self.schedule_id,
            "brand_profile_id": self.brand,
            "due_at": "2027-03-14T09:00:00Z",
            "platforms": ["TWITTER"],
            "target_pillar": None,
        } | changes
        return self.event("ScheduleDue", correlation_id=run_id, **values)

    def ended(self, run_id: str, outcome: str = "PUBLISHED") -> Any:
        return self.event(
            "ScheduleRunCompleted",
            run_id=run_id,
            schedule_id=self.schedule_id,
            brand_profile_id=self.brand,
            outcome=outcome,
        )


async def _dead_letter_errors(db: Database) -> list[str]:
    rows = await db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.content.dlq' ORDER BY id")
    return [json.loads(r["payload"])["error"] for r in rows]


async def _snapshot(db: Database) -> dict[str, list[dict[str, Any]]]:
    """Every row content keeps of organizations (embeddings by their key only)."""
    tables = ("brands", "schedules", "materials", "runs", "pending_posts", "posts")
    snapshot = {t: [dict(r) for r in await db.pool.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in tables}
    snapshot["content_embeddings"] = [
        dict(r) for r in await db.pool.fetch("SELECT kind, source_id FROM content_embeddings ORDER BY kind, source_id")
    ]
    return snapshot


async def test_a_run_named_again_by_another_organization_is_refused_in_a_batch_or_alone(
    db: Database, consumer: EventConsumer
) -> None:
    """content keeps one result per run_id: another organization's ScheduleDue with the same
    run id used to be taken for a redelivery of the first and dropped without a trace."""
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    run_id = str(uuid.uuid4())
    mine, theirs = owner.due(run_id), other.due(run_id)
    # Both in one consumer batch: the owner's run is drafted, the other's copy refused.
    assert await consumer.handle_batch([as_record(e, topic="scheduler.events") for e in (mine, theirs)]) == [
        "handled",
        "dead_lettered",
    ]
    before = await _snapshot(db)
    # Alone, after the owner's run was handled.
    assert await other.send(other.due(run_id), "scheduler.events") == "dead_lettered"
    assert await _dead_letter_errors(db) == [f"PermanentError: run {run_id} belongs to another organization"] * 2
    assert await _snapshot(db) == before
    drafts = await db.pool.fetch("SELECT organization_id FROM pending_posts WHERE run_id = $1", uuid.UUID(run_id))
    assert [str(d["organization_id"]) for d in drafts] == [owner.org]


async def test_an_outcome_naming_another_organizations_run_is_refused_and_keeps_its_draft_in_flight(
    db: Database, consumer: EventConsumer
) -> None:
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    run_id = str(uuid.uuid4())
    assert await owner.send(owner.due(run_id), "scheduler.events") == "handled"
    before = await _snapshot(db)
    assert await other.send(other.ended(run_id, "REJECTED"), "analytics.events") == "dead_lettered"
    assert await _dead_letter_errors(db) == [f"PermanentError: run {run_id} belongs to another organization"]
    assert await _snapshot(db) == before
    # A run no organization has is still no one's: nothing to refuse.
    assert await other.send(other.ended(str(uuid.uuid4())), "analytics.events") == "handled"


async def test_deleting_or_restoring_another_organizations_brand_schedule_or_material_is_refused(
    db: Database, consumer: EventConsumer
) -> None:
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    before = await _snapshot(db)
    named = [
        ("BrandProfileDeleted", {"brand_profile_id": owner.brand}, f"brand {owner.brand}"),
        ("BrandProfileRestored", {"brand_profile_id": owner.brand}, f"brand {owner.brand}"),
        ("ScheduleDeleted", {"schedule_id": owner.schedule_id}, f"schedule {owner.schedule_id}"),
        ("MaterialArchived", {"material_id": owner.material_id}, f"material {owner.material_id}"),
        ("MaterialDeleted", {"material_id": owner.material_id}, f"material {owner.material_id}"),
        ("MaterialRestored", {"material_id": owner.material_id}, f"material {owner.material_id}"),
    ]
    for type_name, ids, _ in named:
        assert await other.send(other.event(type_name, **ids)) == "dead_lettered", type_name
    assert await _dead_letter_errors(db) == [
        f"PermanentError: {what} belongs to another organization" for _, _, what in named
    ]
    assert await _snapshot(db) == before
    # Ids no organization has are no one's: deleting them changes nothing and refuses nothing.
    assert await other.send(other.event("BrandProfileDeleted", brand_profile_id=str(uuid.uuid4()))) == "handled"
    assert await other.send(other.event("ScheduleDeleted", schedule_id=str(uuid.uuid4()))) == "handled"


async def test_engagement_naming_another_organizations_post_or_brand_is_refused(
    db: Database, consumer: EventConsumer
) -> None:
    """It used to be dropped silently for another's post, and for another's brand recorded
    as a post of that brand, which its angle statistics then counted."""
    owner, other = await Tenant(consumer).create(), await Tenant(consumer).create()
    post_id = str(uuid.uuid4())
    mine = owner.event("EngagementUpdated", post_id=post_id, brand_profile_id=owner.brand, engagement_rate=0.01)
    assert await owner.send(mine, "analytics.events") == "handled"
    before = await _snapshot(db)
    on_post = other.event("EngagementUpdated", post_id=post_id, brand_profile_id=other.brand, engagement_rate=0.9)
    fresh_post = str(uuid.uuid4())
    on_brand = other.event("EngagementUpdated", post_id=fresh_post, brand_profile_id=owner.brand, engagement_rate=0.9)
    for event in (on_post, on_brand):
        assert await other.send(event, "analytics.events") == "dead_lettered"
    assert await _dead_letter_errors(db) == [
        f"PermanentError: post {post_id} belongs to another organization",
        f"PermanentError: brand {owner.brand} belongs to another organization",
    ]
    assert await _snapshot(db) == before


async def test_another_organizations_posts_never_weigh_in_this_ones_selection_or_angles(db: Database) -> None:
    """Defence in depth under the refusals: a post of another organization that names this
    one's brand and material (a row from before the refusals, or ids named before this
    organization had them) counts for neither its weighted selection nor its angles."""
    owner_org, other_org, brand, material = (uuid.uuid4() for _ in range(4))
    await db.pool.execute(
        "INSERT INTO materials (id, organization_id, brand_profile_id, type, body, status) "
        "VALUES ($1, $2, $3, 'TEXT', $4, 'READY')",
        material,
        owner_org,
        brand,
        TEXT,
    )
    await db.pool.execute(
        "INSERT INTO posts (post_id, organization_id, brand_profile_id, material_id, platform, angle, engagement_rate) "
        "VALUES ($1, $2, $3, $4, 'TWITTER', 'STORYTELLING', 0.9)",
        uuid.uuid4(),
        other_org,
        brand,
        material,
    )
    async with db.pool.acquire() as conn:
        [candidate] = (await Materials(conn).selectable_candidates({(brand, owner_org)}))[brand]
        assert candidate.material_id == material and candidate.engagement is None
        assert await Posts(conn).angle_stats({(brand, owner_org)}) == {brand: {}}
        # The organization's own post does count.
        await conn.execute(
            "INSERT INTO posts (post_id, organization_id, brand_profile_id, material_id, platform, angle, "
            "engagement_rate) VALUES ($1, $2, $3, $4, 'TWITTER', 'EDUCATIONAL', 0.2)",
            uuid.uuid4(),
            owner_org,
            brand,
            material,
        )
        [candidate] = (await Materials(conn).selectable_candidates({(brand, owner_org)}))[brand]
        assert candidate.engagement == pytest.approx(0.2)
        assert list(await Posts(conn).angle_stats({(brand, owner_org)})) == [brand]
        assert [a.value for a in (await Posts(conn).angle_stats({(brand, owner_org)}))[brand]] == ["EDUCATIONAL"]
