"""Migrations as a step of their own (`hopcast migrate apply SERVICE`, the Kubernetes init
container): a service started with migrate_on_start off applies nothing, waits for the schema
its code needs and opens once it is there, or says what to run when it never comes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import replace

import asyncpg
import pytest

from hopcast_shared.db import Database, migrate_database
from hopcast_shared.migrate_cli import package_migrations, service_migrations
from hopcast_shared.migrations import MigrationError, missing_migrations

pytestmark = pytest.mark.integration

HOPCAST = os.path.join(os.path.dirname(sys.executable), "hopcast")


def _hopcast(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """The `hopcast` command of this environment, as an init container runs it."""
    env = {**os.environ, "BILLING_DATABASE_URL": database_url}
    return subprocess.run([HOPCAST, *args], env=env, capture_output=True, text=True, timeout=120)


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_the_cli_applies_a_services_migrations_and_status_tells_what_is_missing(database_url: str) -> None:
    before = await asyncio.to_thread(_hopcast, "migrate", "status", "billing", database_url=database_url)
    assert before.returncode == 1 and "billing: missing billing 0001_" in before.stdout

    applied = await asyncio.to_thread(_hopcast, "migrate", "apply", "billing", database_url=database_url)
    assert applied.returncode == 0, applied.stderr
    migrations = service_migrations("billing")
    assert (
        f"billing: the schema is current ({len(migrations)} migrations, {len(migrations)} applied now)"
        in applied.stdout
    )
    assert {"ledger", "schema_migrations", "outbox", "inbox"} <= await _tables(database_url)

    again = await asyncio.to_thread(_hopcast, "migrate", "apply", "billing", database_url=database_url)
    assert f"({len(migrations)} migrations, 0 applied now)" in again.stdout
    after = await asyncio.to_thread(_hopcast, "migrate", "status", "billing", database_url=database_url)
    assert after.returncode == 0 and f"{len(migrations)} of {len(migrations)} migrations applied" in after.stdout
    listed = await asyncio.to_thread(_hopcast, "migrate", "status", "billing", "--json", database_url=database_url)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert listed.returncode == 0 and len(rows) == len(migrations) and all(r["applied"] for r in rows)
    assert {"component": "billing", "version": 1} in [{k: r[k] for k in ("component", "version")} for r in rows]


async def test_an_unknown_service_is_a_usage_error(database_url: str) -> None:
    done = await asyncio.to_thread(_hopcast, "migrate", "apply", "nobody", database_url=database_url)
    assert done.returncode == 2 and "expected one of scheduler, content, billing, publisher" in done.stderr


async def test_a_service_that_does_not_migrate_waits_for_the_schema_then_opens(database_url: str) -> None:
    opening = asyncio.create_task(
        Database.open(database_url, package_migrations("billing"), migrate=False, schema_wait_s=60)
    )
    await asyncio.sleep(1.0)
    assert not opening.done()  # nothing applied: it waits
    assert await _tables(database_url) == set()

    await migrate_database(database_url, service_migrations("billing"))
    db = await asyncio.wait_for(opening, timeout=30)
    try:
        assert await db.pool.fetchval("SELECT count(*) FROM ledger") == 0
    finally:
        await db.close()


async def test_a_schema_that_never_comes_ends_the_wait_saying_what_to_run(database_url: str) -> None:
    with pytest.raises(MigrationError, match="run `hopcast migrate apply` for this service"):
        await Database.open(database_url, [], migrate=False, schema_wait_s=0.5)
    assert await _tables(database_url) == set()  # it applied nothing


async def test_an_applied_migration_that_differs_from_the_code_is_refused(database_url: str) -> None:
    migrations = service_migrations("billing")
    await migrate_database(database_url, migrations)
    edited = [*migrations[:-1], replace(migrations[-1], sql=migrations[-1].sql + "\n-- edited")]
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(MigrationError, match="differs from this code's"):
            await missing_migrations(conn, edited)
    finally:
        await conn.close()
