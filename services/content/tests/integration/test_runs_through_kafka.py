"""Content through Kafka alone, as the issue's "done when" says: ScheduleDue events over a
brand's materials produce drafts; two materials with the same text are never both drafted
in one organization; a run with nothing usable ends in ScheduleRunSkipped and one
ScheduleRunCompleted; another organization with the same text still gets its draft; a
redelivered ScheduleDue drafts nothing more."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hopcast_content.bootstrap import definition
from hopcast_shared.contract import Angle
from hopcast_shared.contract.examples import example_event
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import eventually, read_events, send_event
from hopcast_shared.topics import ANALYTICS, CONTENT, SCHEDULER, UPSTREAM

pytestmark = pytest.mark.integration

TEXT = "We roast every Tuesday so that every bag you get is less than a week old. Ana checks every batch by hand."
OTHER = "Grind finer for espresso and coarser for a French press. Change one step at a time and taste the difference."


@pytest.fixture
async def content(database_url: str, kafka: KafkaSettings) -> AsyncIterator[ServiceRuntime]:
    settings = ServiceSettings(
        name="content",
        database_url=database_url,
        http_port=18082,
        handler_backoff_initial_s=0.01,
        outbox_poll_interval_s=0.2,
    )
    async with ServiceRuntime(definition(), settings=settings, kafka=kafka) as runtime:
        yield runtime


class Tenant:
    def __init__(self) -> None:
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())
        self.schedule = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def create(self, producer: AIOKafkaProducer, kafka: KafkaSettings, *texts: str) -> None:
        events = [
            self.event("OrganizationCreated"),
            self.event("BrandProfileCreated", brand_profile_id=self.brand),
            self.event("ScheduleCreated", schedule_id=self.schedule, brand_profile_id=self.brand),
        ]
        events += [
            self.event(
                "MaterialSubmitted", material_id=str(uuid.uuid4()), brand_profile_id=self.brand, body=text, max_uses=1
            )
            for text in texts
        ]
        for event in events:
            await send_event(producer, kafka, UPSTREAM, event)

    def due(self) -> Any:
        run_id = str(uuid.uuid4())
        return self.event(
            "ScheduleDue",
            correlation_id=run_id,
            run_id=run_id,
            schedule_id=self.schedule,
            brand_profile_id=self.brand,
            platforms=["TWITTER", "MASTODON"],
            target_pillar=None,
        )


def of(events: list[dict[str, Any]], tenant: Tenant) -> list[dict[str, Any]]:
    return [e for e in events if e["organizationid"] == tenant.org]


async def test_drafts_duplicates_skips_and_tenants_through_kafka(
    content: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings
) -> None:
    a, b = Tenant(), Tenant()
    await a.create(producer, kafka, TEXT, TEXT.upper(), OTHER)  # two with the same text
    await b.create(producer, kafka, TEXT)

    async def ready() -> bool:
        return await content.db.pool.fetchval("SELECT count(*) FROM materials WHERE status = 'READY'") == 4

    # Topics are not ordered with each other: the runs go once the materials are in.
    await eventually(ready)
    runs = [a.due() for _ in range(3)] + [b.due()]
    for run in runs:
        await send_event(producer, kafka, SCHEDULER, run)
    await send_event(producer, kafka, SCHEDULER, runs[0])  # delivered twice

    drafts = await read_events(kafka, kafka.topic(CONTENT), expect=3, event_type="PendingPostCreated")
    skips = await read_events(kafka, kafka.topic(CONTENT), expect=1, event_type="ScheduleRunSkipped")
    completed = await read_events(kafka, kafka.topic(ANALYTICS), expect=1, event_type="ScheduleRunCompleted")
    await asyncio.sleep(1.0)  # room for a wrong extra event to show up
    drafts = await read_events(kafka, kafka.topic(CONTENT), expect=4, event_type="PendingPostCreated", within=1.0)

    # Organization a: its three materials hold two texts, so two drafts and one skipped run.
    drafted_a = of(drafts, a)
    assert len(drafted_a) == 2
    assert {d["data"]["content"].casefold().count("less than a week old") for d in drafted_a} == {0, 1}
    for d in drafts:
        data = d["data"]
        assert data["content"] and data["angle"] in {x.value for x in Angle} and data["angle_reason"]
        assert data["max_similarity"] <= 0.85 and data["due_at"] == "2027-03-14T07:00:00Z"
        assert d["correlationid"] == data["run_id"]
    [skip] = skips
    assert skip["organizationid"] == a.org and skip["data"]["reason"] == "ALL_CANDIDATES_DUPLICATE"
    [done] = completed
    assert done["data"]["run_id"] == skip["data"]["run_id"] and done["data"]["outcome"] == "SKIPPED_DUPLICATE"
    assert done["data"]["due_at"] == "2027-03-14T07:00:00Z"
    # Organization b, with the same text, still gets its draft.
    [drafted_b] = of(drafts, b)
    assert "less than a week old" in drafted_b["data"]["content"]
    # Every run has exactly one result, the redelivered one included.
    results = [d["data"]["run_id"] for d in drafts] + [skip["data"]["run_id"]]
    assert sorted(results) == sorted(str(r.data["run_id"]) for r in runs)
    assert await content.db.pool.fetchval("SELECT count(*) FROM outbox WHERE topic LIKE '%.dlq'") == 0
