"""Least-privilege database roles (deploy/sql/roles.sql) against the real PostgreSQL: billing runs
as a process with the runtime role (migrations applied as the owner role through
BILLING_MIGRATIONS_DATABASE_URL), takes a subscription and debits a pending post; the runtime role
cannot change the schema, the migration history or the ledger, nor disable the ledger's trigger."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from hopcast_billing.adapters.ledger import verify_all
from hopcast_shared.contract.examples import example_event
from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.topics import CONTENT, ensure_topics
from hopcast_stack.pytest_plugin import TestStack
from hopcast_stack.services import FAST_SERVICE_ENV, ServiceSet
from hopcast_stack.upstream import Upstream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROLES_SQL = (Path(__file__).parents[2] / "deploy" / "sql" / "roles.sql").read_text()


def as_role(url: str, role: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{role}@{rest.split('@', 1)[1]}"


async def apply_roles(admin_url: str, service: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"SET hopcast.service = '{service}'")
        await conn.execute(ROLES_SQL)
    finally:
        await conn.close()


async def credits(services: ServiceSet, org: str) -> int | None:
    status, body = await services.get_json("billing", f"/organizations/{org}/credits", organization=org)
    return int(body["balance"]) if status == 200 else None


async def wait_credits(services: ServiceSet, org: str, expected: int) -> None:
    deadline = time.monotonic() + 60
    while await credits(services, org) != expected:
        assert time.monotonic() < deadline, f"balance {await credits(services, org)}, expected {expected}"
        await asyncio.sleep(0.2)


async def test_billing_runs_with_a_runtime_role_that_cannot_change_schema_history_or_ledger(stack: TestStack) -> None:
    admin = await stack.new_database("roles_billing")
    await apply_roles(admin, "billing")
    await apply_roles(admin, "billing")  # idempotent
    owner, app = as_role(admin, "hopcast_billing_owner"), as_role(admin, "hopcast_billing_app")

    kafka = stack.kafka_settings.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:10]}.", "partitions": 1})
    await ensure_topics(kafka)
    await stack.grant(kafka.topic_prefix)
    services = ServiceSet(
        kafka=kafka,
        database_urls={"billing": app},
        state_dir=stack.state_dir / "services" / kafka.topic_prefix.rstrip("."),
        extra_env={**FAST_SERVICE_ENV, "BILLING_MIGRATIONS_DATABASE_URL": owner},
        credentials=stack.kafka.credentials,
    )
    try:
        await services.start()  # migrates as the owner, runs as the app role
        await apply_roles(admin, "billing")  # after the migrations: the per-table narrowing

        runtime = await asyncpg.connect(app)
        try:
            denied = [
                "CREATE TABLE intruder (id int)",
                "DROP TABLE ledger",
                "ALTER TABLE ledger DISABLE TRIGGER ledger_append_only",
                "UPDATE ledger SET period_amount = period_amount + 1000",
                "TRUNCATE outbox",
                "INSERT INTO schema_migrations (component, version, name, checksum) VALUES ('x', 99, 'x', 'x')",
                "DELETE FROM schema_migrations",
                "CREATE ROLE intruder",
            ]
            refused = []
            for statement in denied:
                try:
                    await runtime.execute(statement)
                except asyncpg.InsufficientPrivilegeError:
                    refused.append(statement)
            assert refused == denied
            # Not an owner: a GRANT is a warning that grants nothing.
            await runtime.execute("GRANT SELECT ON ledger TO PUBLIC")
            public = (
                "SELECT coalesce(bool_or(a.grantee = 0), false) "
                "FROM pg_class c, aclexplode(c.relacl) a WHERE c.relname = $1"
            )
            assert await runtime.fetchval(public, "ledger") is False
            owners = {
                r[0]
                for r in await runtime.fetch("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
            }
            assert owners == {"hopcast_billing_owner"}
        finally:
            await runtime.close()

        # The service works under the narrowed role: a subscription, then a debit.
        org = str(uuid.uuid4())
        now = datetime.now(UTC)
        async with Upstream(services.kafka_as("upstream"), observer=kafka) as upstream:
            await upstream.send(example_event("OrganizationCreated", organization_id=org))
            await upstream.send(
                example_event(
                    "SubscriptionActivated",
                    organization_id=org,
                    subscription_id=str(uuid.uuid4()),
                    plan="STARTER",
                    credits_total=300,
                    period_start=(now - timedelta(days=1)).isoformat(),
                    period_end=(now + timedelta(days=29)).isoformat(),
                )
            )
            await wait_credits(services, org, 300)
            draft = example_event("PendingPostCreated", organization_id=org, platforms=["MASTODON", "BLUESKY"])
            # A draft comes from content: upstream may not write content.events (the broker refuses).
            content = AIOKafkaProducer(enable_idempotence=True, **connection_kwargs(services.kafka_as("content")))
            await content.start()
            try:
                await content.send_and_wait(kafka.topic(CONTENT), draft.to_json(), key=org.encode())
            finally:
                await content.stop()
            await wait_credits(services, org, 297)

        # A restart under the runtime role: the migrations are checked, nothing to create.
        services.stop()
        await services.start()
        assert await credits(services, org) == 297
        runtime = await asyncpg.connect(app)
        try:
            assert await verify_all(runtime) == []
        finally:
            await runtime.close()
    finally:
        services.stop()
