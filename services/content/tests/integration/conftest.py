"""Content on one real database, shared by this folder's tests: a `Harness` handles events as the
consumer does (inbox, outbox, dead letters); its tenants (one organization, brand and schedule
each) submit materials and send ScheduleDue. The relay is not running: events are read from the
outbox.

Fixtures: `db` (content's migrated database, 384 dimensions), `h` (content on it),
`harness_on` (content on another database or with other settings), `tenant_of` (a tenant of any
sender, such as a script that only records events), `open_db` (a database of any dimension) and
`texts` (sample materials).
Test modules cannot import each other (--import-mode=importlib): what they share is here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hopcast_content.bootstrap import CONSUMES, build_deps, render_migrations
from hopcast_content.config import ContentSettings
from hopcast_content.domain.embedding import Embedder
from hopcast_content.service_layer.dispatch import DISPATCH
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.dispatch import bind
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record

KAFKA = KafkaSettings(topic_prefix="t.")


@dataclass(frozen=True)
class Texts:
    """Three materials of a coffee roaster, each unlike the others."""

    a: str = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
    b: str = (
        "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference."
    )
    c: str = "Our new Ethiopian single origin tastes of blueberry and jasmine. It arrives in shops next Monday."


async def open_content_db(url: str, dim: int = 384, tmp: Path | None = None) -> Database:
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
            consumes=CONSUMES,
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

    async def tenant(self, **schedule: Any) -> Tenant:
        """A new organization with one brand and one schedule (with these settings), created."""
        return await Tenant(self, **schedule).create()

    @staticmethod
    def drafted(found: dict[str, Any]) -> dict[str, Any]:
        """The one PendingPostCreated of a run (of `Tenant.run`), which was not skipped."""
        assert found["ScheduleRunSkipped"] == [], found
        [post] = found["PendingPostCreated"]
        return post

    @staticmethod
    def skipped(found: dict[str, Any], reason: str, outcome: str) -> None:
        """The run was skipped for `reason` and ended with `outcome`, each on its topic."""
        assert found["PendingPostCreated"] == []
        [skip] = found["ScheduleRunSkipped"]
        [completed] = found["ScheduleRunCompleted"]
        assert skip["data"]["reason"] == reason and skip["_topic"] == "t.content.events"
        assert completed["data"]["outcome"] == outcome and completed["_topic"] == "t.analytics.events"
        assert completed["data"]["due_at"] == "2027-03-14T09:00:00Z"
        assert completed["correlationid"] == skip["data"]["run_id"]


class Tenant:
    """One organization with one brand and one schedule, as upstream creates them."""

    def __init__(self, h: Any, **schedule: Any) -> None:
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
    database = await open_content_db(database_url)
    yield database
    await database.close()


@pytest.fixture
def h(db: Database) -> Harness:
    return Harness(db)


@pytest.fixture
def texts() -> Texts:
    return Texts()


@pytest.fixture
def harness_on() -> type[Harness]:
    return Harness


@pytest.fixture
def tenant_of() -> type[Tenant]:
    return Tenant


@pytest.fixture
def open_db() -> Callable[..., Any]:
    return open_content_db
