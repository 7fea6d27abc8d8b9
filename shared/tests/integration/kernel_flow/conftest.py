"""The kernel on the real broker and database, through a small test service, "ledgerlet", that
counts organizations: for each OrganizationCreated it inserts a row and emits
OrganizationRestored (any contract type will do) to analytics. `behaviour` makes its handler
fail as a test needs; `service` runs it (ServiceRuntime: consumer, relay, dead letters);
`ledgerlet` makes its events and reads its rows, its outbox and its dead letters.

Test modules cannot import each other (--import-mode=importlib): what they share is here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hopcast_shared.contract import OrganizationCreated, OrganizationRestored, new_event
from hopcast_shared.db import Database
from hopcast_shared.dlq import read_dead_letters
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.kafka import make_producer
from hopcast_shared.outbox import OutboxRow, event_rows
from hopcast_shared.service import ServiceDefinition, ServiceRuntime
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.topics import ANALYTICS, UPSTREAM, TopicSpec, dlq_topic, ensure_topics

SERVICE = "ledgerlet"


class Behaviour:
    """How the test handler behaves: fail the first N times, or always with a given error."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_first = 0
        self.error: type[BaseException] = RuntimeError
        self.poison: set[str] = set()  # organization names refused for good


class Ledgerlet:
    """What the tests send to the test service and read of it."""

    name = SERVICE

    @staticmethod
    def created(org: uuid.UUID, name: str) -> Any:
        return new_event(
            OrganizationCreated(organization_id=org, name=name), organization_id=org, source="upstream/test"
        )

    @staticmethod
    def restored(kafka: KafkaSettings, org: uuid.UUID) -> list[OutboxRow]:
        """The outbox row of an OrganizationRestored on analytics.events, as a handler writes it."""
        return event_rows(
            kafka,
            [OrganizationRestored(organization_id=org)],
            organization_id=org,
            source="hopcast/test",
            correlation_id=None,
            causation_id=None,
            trace=[],
            topics=[ANALYTICS],
        )

    @staticmethod
    async def send(
        producer: AIOKafkaProducer,
        kafka: KafkaSettings,
        value: bytes,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> int:
        """Send to upstream.events; returns the partition the record went to."""
        metadata = await producer.send_and_wait(kafka.topic(UPSTREAM), value, key=key, partition=partition)
        return int(metadata.partition)

    @staticmethod
    async def orgs(db: Database) -> list[str]:
        rows = await db.pool.fetch("SELECT name FROM organizations ORDER BY name")
        return [r["name"] for r in rows]

    @staticmethod
    async def has(db: Database, name: str) -> bool:
        return name in await Ledgerlet.orgs(db)

    @staticmethod
    async def outbox_empty(db: Database) -> bool:
        return bool(await db.pool.fetchval("SELECT count(*) FROM outbox") == 0)

    @staticmethod
    async def letters(kafka: KafkaSettings, n: int) -> list[Any]:
        """The service's dead letters once there are `n` of them (empty before)."""
        letters = await read_dead_letters(kafka, SERVICE, timeout_s=0.5)
        return letters if len(letters) >= n else []

    @staticmethod
    def relay_producers(kafka: KafkaSettings) -> Callable[[], Awaitable[AIOKafkaProducer]]:
        """A relay's producer factory, as a service's runtime gives it one."""

        async def producer_factory() -> AIOKafkaProducer:
            p = make_producer(kafka, "test-relay")
            await p.start()
            return p

        return producer_factory


@pytest.fixture
def ledgerlet() -> type[Ledgerlet]:
    return Ledgerlet


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    (tmp_path / "0001_organizations.sql").write_text(
        "CREATE TABLE organizations (id uuid PRIMARY KEY, name text NOT NULL);"
    )
    return tmp_path


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def definition(migrations_dir: Path, behaviour: Behaviour) -> ServiceDefinition:
    async def organization_created(ctx: EventContext, data: OrganizationCreated) -> None:
        behaviour.calls += 1
        if behaviour.calls <= behaviour.fail_first:
            raise behaviour.error("induced failure")
        if data.name in behaviour.poison:
            raise PermanentError(f"{data.name} is refused")
        await ctx.conn.execute("INSERT INTO organizations (id, name) VALUES ($1, $2)", data.organization_id, data.name)
        await ctx.emit(OrganizationRestored(organization_id=data.organization_id), topics=[ANALYTICS])

    return ServiceDefinition(
        name=SERVICE,
        consumes=[UPSTREAM],
        handlers={"OrganizationCreated": organization_created},
        migrations_dir=migrations_dir,
    )


@pytest.fixture
def service_settings(database_url: str) -> ServiceSettings:
    return ServiceSettings(
        name=SERVICE,
        database_url=database_url,
        http_port=18080,
        handler_max_attempts=3,
        handler_backoff_initial_s=0.01,
        handler_backoff_max_s=0.05,
        outbox_poll_interval_s=0.2,
    )


@pytest.fixture
async def service(
    definition: ServiceDefinition, service_settings: ServiceSettings, kafka: KafkaSettings
) -> AsyncIterator[ServiceRuntime]:
    # The test service's own dead-letter topic (the four services' are created with the others).
    await ensure_topics(kafka, [TopicSpec(kafka.topic(dlq_topic(SERVICE)), 1, 1, {})])
    async with ServiceRuntime(definition, settings=service_settings, kafka=kafka) as runtime:
        yield runtime
