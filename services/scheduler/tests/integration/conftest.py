"""Fixtures of the scheduler's integration tests that more than one module uses: the database
with the scheduler's migrations, its consumer (the real handlers, through the inbox), and an
organization with a brand and a schedule that sends its events through that consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from hopcast_scheduler.bootstrap import MIGRATIONS, definition
from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract.examples import example_event
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import ServiceSettings
from hopcast_shared.testing import as_record


class SchedulerTenant:
    """One organization with a brand and a schedule, through the consumer."""

    def __init__(self, consumer: EventConsumer) -> None:
        self.consumer = consumer
        self.org = str(uuid.uuid4())
        self.brand = str(uuid.uuid4())
        self.schedule_id = str(uuid.uuid4())

    def event(self, type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=self.org, **changes)

    async def send(self, event: Any, topic: str = "upstream.events") -> str:
        return await self.consumer.handle_record(as_record(event, topic=topic))

    async def create(self) -> SchedulerTenant:
        schedule = self.event(
            "ScheduleCreated",
            schedule_id=self.schedule_id,
            brand_profile_id=self.brand,
            days_of_week=[0, 1, 2, 3, 4, 5, 6],
        )
        for event in (
            self.event("OrganizationCreated"),
            self.event("BrandProfileCreated", brand_profile_id=self.brand),
            schedule,
        ):
            assert await self.send(event) == "handled"
        return self

    async def trigger(self, db: Database) -> str:
        """Post now; returns the run it started."""
        assert await self.send(self.event("ScheduleTriggerRequested", schedule_id=self.schedule_id)) == "handled"
        run_id = await db.pool.fetchval(
            "SELECT run_id FROM schedule_runs WHERE organization_id = $1 ORDER BY created_at DESC LIMIT 1",
            uuid.UUID(self.org),
        )
        return str(run_id)


@pytest.fixture
async def scheduler_db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url, load_migrations("scheduler", MIGRATIONS))
    yield database
    await database.close()


@pytest.fixture
def scheduler_consumer_on(database_url: str, stack: Any) -> Callable[..., EventConsumer]:
    """`scheduler_consumer_on(db, **settings)`: the scheduler's consumer on `db`, reading its
    topics as the service does, with these ServiceSettings changed."""

    def consumer_on(db: Database, **settings: Any) -> EventConsumer:
        scheduler = definition()
        service = ServiceSettings(
            name="scheduler", database_url=database_url, http_port=18081, handler_backoff_initial_s=0.01, **settings
        )
        return EventConsumer(
            "scheduler",
            db,
            scheduler.handlers,
            kafka=stack.kafka_settings,
            settings=service,
            consumes=scheduler.consumes,
        )

    return consumer_on


@pytest.fixture
def scheduler_consumer(scheduler_db: Database, scheduler_consumer_on: Callable[..., EventConsumer]) -> EventConsumer:
    return scheduler_consumer_on(scheduler_db)


@pytest.fixture
def scheduler_tenant(scheduler_consumer: EventConsumer) -> Callable[[], Any]:
    """`await scheduler_tenant().create()`: a new organization with a brand and a schedule."""
    return lambda: SchedulerTenant(scheduler_consumer)
