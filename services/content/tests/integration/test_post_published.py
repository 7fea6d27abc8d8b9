"""What content does with PostPublished, on the real database: each one is a single
statement that records the post, counts the material's use once per pending post (USED at
max_uses), keeps the draft's embedding as the post's, and refuses another organization's
ids; the run's ScheduleRunCompleted is one statement too, and the two
counting at once count one use."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.posts import Posts, Published
from hopcast_content.adapters.runs import Runs
from hopcast_content.bootstrap import CONSUMES, build_deps, render_migrations
from hopcast_content.config import ContentSettings
from hopcast_content.domain.materials import MaterialStatus, status_after_use
from hopcast_content.service_layer.dispatch import DISPATCH
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event, example_model
from hopcast_shared.db import Database
from hopcast_shared.dispatch import bind
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import CountingDatabase, as_record

pytestmark = pytest.mark.integration

TEXT = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[CountingDatabase]:
    database = CountingDatabase(await Database.open(database_url, load_migrations("content", render_migrations(384))))
    yield database
    await database.close()


class Content:
    """Content on one database, fed events as its consumer is."""

    def __init__(self, db: CountingDatabase) -> None:
        self.db = db
        self.consumer = EventConsumer(
            "content",
            db,
            bind(DISPATCH, build_deps(ContentSettings())),
            kafka=KafkaSettings(topic_prefix="t."),
            settings=ServiceSettings(
                name="content", database_url=db.url, http_port=18082, handler_backoff_initial_s=0.01
            ),
            consumes=CONSUMES,
        )

    async def send(self, event: Any, topic: str = "upstream.events") -> tuple[str, int]:
        """How the event was handled, and in how many statements (its transaction's)."""
        self.db.transactions = []
        result = await self.consumer.handle_record(as_record(event, topic=topic))
        [statements] = [len(queries) for queries in self.db.transactions]
        return result, statements


async def tenant(content: Content, max_uses: int | None) -> tuple[dict[str, str], dict[str, Any]]:
    """An organization with a brand, a schedule and one material; returns its ids and the
    PendingPostCreated of its first run."""
    ids = {name: str(uuid.uuid4()) for name in ("org", "brand", "schedule", "material", "run")}

    def event(type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=ids["org"], **changes)

    for e in (
        event("OrganizationCreated"),
        event("BrandProfileCreated", brand_profile_id=ids["brand"]),
        event("ScheduleCreated", schedule_id=ids["schedule"], brand_profile_id=ids["brand"]),
        event(
            "MaterialSubmitted",
            material_id=ids["material"],
            brand_profile_id=ids["brand"],
            title=None,
            body=TEXT,
            max_uses=max_uses,
        ),
    ):
        assert (await content.send(e))[0] == "handled"
    due = event(
        "ScheduleDue",
        correlation_id=ids["run"],
        run_id=ids["run"],
        schedule_id=ids["schedule"],
        brand_profile_id=ids["brand"],
        due_at="2027-03-14T09:00:00Z",
        platforms=["TWITTER", "LINKEDIN"],
        target_pillar=None,
    )
    assert (await content.send(due, "scheduler.events"))[0] == "handled"
    [payload] = await content.db.pool.fetch("SELECT payload FROM outbox WHERE event_type = 'PendingPostCreated'")
    return ids, json.loads(payload["payload"])["data"]


async def state(db: Database) -> dict[str, Any]:
    """Everything a PostPublished may change (posts' updated_at aside: a redelivery touches it)."""
    return {
        "materials": [dict(r) for r in await db.pool.fetch("SELECT * FROM materials ORDER BY id")],
        "pending_posts": [dict(r) for r in await db.pool.fetch("SELECT * FROM pending_posts ORDER BY id")],
        "posts": [
            dict(r)
            for r in await db.pool.fetch(
                "SELECT post_id, organization_id, brand_profile_id, pending_post_id, material_id, platform, angle, "
                "published_at, engagement_rate FROM posts ORDER BY post_id"
            )
        ],
        "embeddings": [
            {**dict(r), "embedding": r["embedding"].to_list()}
            for r in await db.pool.fetch("SELECT * FROM content_embeddings ORDER BY id")
        ],
    }


async def test_post_published_on_two_platforms_counts_one_use_keeps_the_posts_in_one_statement_each(
    db: CountingDatabase,
) -> None:
    content = Content(db)
    ids, draft = await tenant(content, max_uses=1)
    org, material_id = uuid.UUID(ids["org"]), uuid.UUID(ids["material"])
    pending_id = uuid.UUID(draft["pending_post_id"])
    published_at = datetime(2027, 3, 14, 9, 0, 5, tzinfo=UTC)
    post_ids = {"TWITTER": uuid.uuid4(), "LINKEDIN": uuid.uuid4()}

    def published(platform: str, post_id: uuid.UUID, organization_id: str = ids["org"], **changes: Any) -> Any:
        values = {
            "post_id": str(post_id),
            "pending_post_id": str(pending_id),
            "run_id": ids["run"],
            "material_id": ids["material"],
            "schedule_id": ids["schedule"],
            "brand_profile_id": ids["brand"],
            "platform": platform,
            "angle": draft["angle"],
            "published_at": (published_at + timedelta(seconds=len(platform))).isoformat(),
        } | changes
        return example_event("PostPublished", organization_id=organization_id, **values)

    # The fewest statements a handled event costs: EngagementUpdated's handler is one.
    engagement = example_event(
        "EngagementUpdated", organization_id=ids["org"], post_id=str(uuid.uuid4()), brand_profile_id=ids["brand"]
    )
    result, one_statement = await content.send(engagement, "analytics.events")
    assert result == "handled"
    await db.pool.execute("DELETE FROM posts")

    for platform, post_id in post_ids.items():
        assert await content.send(published(platform, post_id), "publisher.events") == ("handled", one_statement)

    material = await db.pool.fetchrow("SELECT * FROM materials WHERE id = $1", material_id)
    assert (material["usage_count"], material["status"]) == (1, MaterialStatus.USED.value)
    # The first platform's PostPublished counted the use; the second counts nothing.
    assert material["last_used_at"] == published_at + timedelta(seconds=len("TWITTER"))
    assert await db.pool.fetchval("SELECT use_counted FROM pending_posts WHERE id = $1", pending_id)
    posts = await db.pool.fetch("SELECT * FROM posts ORDER BY platform")
    assert [(p["platform"], p["post_id"]) for p in posts] == sorted(post_ids.items())
    assert all(
        (p["organization_id"], p["pending_post_id"], p["material_id"]) == (org, pending_id, material_id) for p in posts
    )
    [drafted] = await db.pool.fetch("SELECT * FROM content_embeddings WHERE kind = 'PENDING_POST'")
    # The draft's embedding is kept once, as its first post's: the posts of every platform share it.
    [k] = await db.pool.fetch("SELECT * FROM content_embeddings WHERE kind = 'POST'")
    assert k["source_id"] == post_ids["TWITTER"]
    assert (k["organization_id"], k["brand_profile_id"]) == (org, uuid.UUID(ids["brand"]))
    assert k["material_id"] == material_id
    assert (k["content_hash"], k["material_hash"]) == (drafted["content_hash"], drafted["material_hash"])
    assert k["embedding"].to_list() == drafted["embedding"].to_list()
    before = await state(db)

    # Redelivered in a new envelope (a new event id): nothing changes.
    again = published("TWITTER", post_ids["TWITTER"])
    assert await content.send(again, "publisher.events") == ("handled", one_statement)
    assert await state(db) == before

    # Another organization naming this pending post (and its material, brand, schedule and
    # run) is refused: nothing of the pending post's organization changes, nor is a post of
    # the other recorded against them.
    other, other_post = str(uuid.uuid4()), uuid.uuid4()
    assert (await content.send(example_event("OrganizationCreated", organization_id=other)))[0] == "handled"
    foreign = published("MASTODON", other_post, other)
    assert await content.consumer.handle_record(as_record(foreign, topic="publisher.events")) == "dead_lettered"
    assert await state(db) == before
    # Nor may it take over one of the organization's posts.
    stolen = published("TWITTER", post_ids["TWITTER"], other, pending_post_id=str(uuid.uuid4()))
    assert await content.consumer.handle_record(as_record(stolen, topic="publisher.events")) == "dead_lettered"
    assert await state(db) == before
    errors = [
        json.loads(r["payload"])["error"]
        for r in await db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.content.dlq' ORDER BY id")
    ]
    assert errors == [
        f"PermanentError: pending post {pending_id} belongs to another organization",
        f"PermanentError: post {post_ids['TWITTER']} belongs to another organization",
    ]

    # ScheduleRunCompleted: the use was counted already; one statement too.
    completed = example_event(
        "ScheduleRunCompleted",
        organization_id=ids["org"],
        run_id=ids["run"],
        schedule_id=ids["schedule"],
        brand_profile_id=ids["brand"],
        outcome="PUBLISHED",
    )
    assert await content.send(completed, "analytics.events") == ("handled", one_statement)
    material = await db.pool.fetchrow("SELECT usage_count, status FROM materials WHERE id = $1", material_id)
    assert (material["usage_count"], material["status"]) == (1, MaterialStatus.USED.value)


@pytest.mark.parametrize("status", [MaterialStatus.READY, MaterialStatus.ARCHIVED, MaterialStatus.USED])
async def test_a_counted_use_changes_the_status_as_status_after_use_decides(
    db: CountingDatabase, status: MaterialStatus
) -> None:
    """A counted use decides READY -> USED in SQL (in PostPublished's statement and in the
    end of a run that published): it must decide as the domain's status_after_use, for every
    uses and max_uses, and leave any other status alone."""
    org, brand = uuid.uuid4(), uuid.uuid4()
    used_at = datetime(2027, 3, 14, 9, 0, tzinfo=UTC)
    for max_uses in (None, 1, 2, 3):
        for uses in (0, 1, 2):
            material_id = uuid.uuid4()
            await Materials(db.pool).insert(  # type: ignore[arg-type]
                {
                    "id": material_id,
                    "organization_id": org,
                    "brand_profile_id": brand,
                    "type": "TEXT",
                    "title": None,
                    "body": TEXT,
                    "media_urls": [],
                    "content_pillar": None,
                    "max_uses": max_uses,
                },
            )
            await db.pool.execute(
                "UPDATE materials SET status = $2, usage_count = $3 WHERE id = $1", material_id, status.value, uses
            )
            pending_id, run_id = uuid.uuid4(), uuid.uuid4()
            await Runs(db.pool).insert_pending_posts(  # type: ignore[arg-type]
                [
                    {
                        "id": pending_id,
                        "run_id": run_id,
                        "organization_id": org,
                        "brand_profile_id": brand,
                        "schedule_id": uuid.uuid4(),
                        "material_id": material_id,
                        "content_pillar": None,
                        "content": TEXT,
                        "hashtags": [],
                        "media_urls": [],
                        "media": [],
                        "platforms_left_out": [],
                        "platforms": ["TWITTER"],
                        "angle": "USER_BENEFIT",
                        "angle_reason": "test",
                        "max_similarity": 0.0,
                        "requires_approval": False,
                        "due_at": used_at,
                        "texts": {"TWITTER": TEXT},
                    }
                ],
            )
            for _ in range(2):  # counted once
                ended = await Runs(db.pool).end(run_id, org, "PUBLISHED", used_at, published=True)  # type: ignore[arg-type]
                assert ended
            row = await db.pool.fetchrow("SELECT * FROM materials WHERE id = $1", material_id)
            expected = status_after_use(uses + 1, max_uses) if status is MaterialStatus.READY else status
            assert (row["usage_count"], row["status"], row["last_used_at"]) == (uses + 1, expected.value, used_at), (
                uses,
                max_uses,
            )


@pytest.mark.parametrize("first", ["PostPublished", "ScheduleRunCompleted"])
async def test_a_post_published_and_the_runs_end_at_the_same_time_count_one_use(
    db: CountingDatabase, first: str
) -> None:
    """Whichever of the two locks the pending post first, the other (waiting for it) sees
    its count and does not count again."""
    content = Content(db)
    ids, draft = await tenant(content, max_uses=None)
    org, run_id = uuid.UUID(ids["org"]), uuid.UUID(ids["run"])
    published_at = datetime(2027, 3, 14, 9, 0, 5, tzinfo=UTC)
    post = example_model(
        "PostPublished",
        post_id=str(uuid.uuid4()),
        pending_post_id=draft["pending_post_id"],
        run_id=ids["run"],
        material_id=ids["material"],
        schedule_id=ids["schedule"],
        brand_profile_id=ids["brand"],
        published_at=published_at.isoformat(),
    )

    async def publish(conn: Any) -> None:
        assert await Posts(conn).publish(org, post) == Published(known=True, of_another=None)

    async def end(conn: Any) -> None:
        assert await Runs(conn).end(run_id, org, "PUBLISHED", published_at, published=True)

    steps = [publish, end] if first == "PostPublished" else [end, publish]
    async with db.pool.acquire() as one, db.pool.acquire() as two:
        first_tx, second_tx = one.transaction(), two.transaction()
        await first_tx.start()
        await second_tx.start()
        await steps[0](one)
        waiting = asyncio.create_task(steps[1](two))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second waits for the first's lock on the pending post"
        await first_tx.commit()
        await waiting
        await second_tx.commit()
    usage = await db.pool.fetchval("SELECT usage_count FROM materials WHERE id = $1", uuid.UUID(ids["material"]))
    assert usage == 1
