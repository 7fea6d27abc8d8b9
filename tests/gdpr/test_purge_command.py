"""`hopcast purge` as an operator runs it (its own process, the databases named by the
`<SERVICE>_DATABASE_URL` variables): in every service's database, an organization deleted
longer ago than the retention is gone for good with what each service holds of it; one
deleted lately and a live one are kept; `--dry-run` deletes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hopcast_billing.adapters.ledger import Ledger
from hopcast_billing.bootstrap import MIGRATIONS as BILLING_MIGRATIONS
from hopcast_content.bootstrap import render_migrations
from hopcast_publisher.bootstrap import MIGRATIONS as PUBLISHER_MIGRATIONS
from hopcast_scheduler.bootstrap import MIGRATIONS as SCHEDULER_MIGRATIONS
from hopcast_shared import projections
from hopcast_shared.db import Database
from hopcast_shared.migrations import load_migrations

pytestmark = pytest.mark.integration

HOPCAST = Path(sys.executable).parent / "hopcast"
SERVICES = ("scheduler", "content", "billing", "publisher")


class Tenants:
    """Three organizations known to every service: deleted 40 days ago, deleted 5 days ago, live."""

    def __init__(self) -> None:
        self.old, self.recent, self.live = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def seed(self, service: str, db: Database) -> None:
        async with db.transaction() as conn:
            for org in (self.old, self.recent, self.live):
                await projections.upsert_organization(conn, org, "Roastery")
                if service == "billing":
                    book = Ledger(conn)
                    await book.ensure_balance_row(org)
                    await book.credit_balance(org, 0, 50)
                    await book.append_ledger(
                        org=org,
                        action="TOPUP",
                        period_amount=0,
                        topup_amount=50,
                        key=f"grant:{org}",
                        balance_after=50,
                        description="Top-up grant: seed",
                    )
            for org in (self.old, self.recent):
                await projections.set_organization_deleted(conn, org, True)
            await conn.execute(
                "UPDATE organizations SET deleted_at = now() - interval '40 days' WHERE id = $1", self.old
            )
            await conn.execute(
                "UPDATE organizations SET deleted_at = now() - interval '5 days' WHERE id = $1", self.recent
            )
            # Handled message ids: one older than Kafka's retention (30 days for the DLQ), one not.
            await conn.execute(
                """
                INSERT INTO inbox (consumer, message_id, event_type, outcome, handled_at)
                VALUES ($1, 'long-ago', 'OrganizationCreated', 'handled', now() - interval '31 days'),
                       ($1, 'lately', 'OrganizationCreated', 'handled', now() - interval '10 days')
                """,
                service,
            )


@pytest.fixture
async def databases(stack: Any) -> AsyncIterator[dict[str, Database]]:
    migrations = {
        "scheduler": SCHEDULER_MIGRATIONS,
        "content": render_migrations(384),
        "billing": BILLING_MIGRATIONS,
        "publisher": PUBLISHER_MIGRATIONS,
    }
    opened = {}
    for service in SERVICES:
        url = await stack.new_database(service)
        opened[service] = await Database.open(url, load_migrations(service, migrations[service]), max_size=2)
    yield opened
    for db in opened.values():
        await db.close()


async def _hopcast_purge(
    databases: dict[str, Database], *args: str, env: dict[str, str] | None = None, exit_code: int = 0
) -> tuple[str, str]:
    """Run `hopcast purge ARGS` in its own process against these databases; (stdout, stderr)."""
    environ = {k: v for k, v in os.environ.items() if not k.endswith(("_DATABASE_URL", "_RETENTION_DAYS"))}
    environ.update({f"{service.upper()}_DATABASE_URL": db.url for service, db in databases.items()})
    environ.update(env or {})
    process = await asyncio.create_subprocess_exec(
        str(HOPCAST), "purge", *args, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == exit_code, err.decode()
    return out.decode(), err.decode()


async def _organizations(db: Database) -> set[uuid.UUID]:
    return {r["id"] for r in await db.pool.fetch("SELECT id FROM organizations")}


async def _inbox(db: Database) -> set[str]:
    return {r["message_id"] for r in await db.pool.fetch("SELECT message_id FROM inbox")}


async def test_hopcast_purge_purges_every_service_database(databases: dict[str, Database]) -> None:
    tenants = Tenants()
    for service, db in databases.items():
        await tenants.seed(service, db)
    everyone = {tenants.old, tenants.recent, tenants.live}

    dry, _ = await _hopcast_purge(databases, "--dry-run")
    for service in SERVICES:
        assert f"{service}: would delete (older than 30 days)" in dry
        assert '"organizations": 1' in dry.split(f"{service}: ")[1].splitlines()[0]
    for db in databases.values():
        assert await _organizations(db) == everyone
        assert await _inbox(db) == {"long-ago", "lately"}

    done, _ = await _hopcast_purge(databases)
    assert sorted(line.split(":")[0] for line in done.splitlines()) == sorted(SERVICES)
    for service, db in databases.items():
        assert await _organizations(db) == {tenants.recent, tenants.live}, service
        assert await _inbox(db) == {"lately"}, service
    billing = databases["billing"].pool
    assert {r["organization_id"] for r in await billing.fetch("SELECT organization_id FROM ledger")} == {
        tenants.recent,
        tenants.live,
    }
    assert tenants.old not in {r["organization_id"] for r in await billing.fetch("SELECT * FROM balances")}

    # A shorter retention takes the one deleted lately too; the live one and the inbox's ids that
    # Kafka could still redeliver stay whatever the retention.
    await _hopcast_purge(databases, "--older-than-days", "1")
    for service, db in databases.items():
        assert await _organizations(db) == {tenants.live}, service
        assert await _inbox(db) == {"lately"}, service
    assert await billing.fetchval("SELECT count(*) FROM ledger") == 1


async def test_an_unreachable_database_fails_the_command_but_not_the_others(databases: dict[str, Database]) -> None:
    tenants = Tenants()
    for service, db in databases.items():
        await tenants.seed(service, db)
    elsewhere = databases["billing"].url.rsplit("/", 1)[0] + "/no_such_database"
    _, err = await _hopcast_purge(databases, env={"BILLING_DATABASE_URL": elsewhere}, exit_code=1)
    assert "billing: failed" in err
    for service, db in databases.items():
        expected = (
            {tenants.old, tenants.recent, tenants.live} if service == "billing" else {tenants.recent, tenants.live}
        )
        assert await _organizations(db) == expected, service


async def test_the_ledger_of_a_live_organization_cannot_be_deleted(databases: dict[str, Database]) -> None:
    tenants = Tenants()
    await tenants.seed("billing", databases["billing"])
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await databases["billing"].pool.execute("DELETE FROM ledger WHERE organization_id = $1", tenants.live)
