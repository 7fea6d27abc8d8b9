"""The kernel's organization and brand projection on the real database: its migration brings a
service's older tables to one shape, and its handlers keep them, tenant by tenant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hopcast_shared.contract.examples import example_event
from hopcast_shared.contract.registry import model_for
from hopcast_shared.db import Database
from hopcast_shared.dispatch import bind
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.migrations import load_migrations
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.tenants import tenant_dispatch

pytestmark = pytest.mark.integration

# A service whose first migration made the projection before the kernel owned it, as the
# scheduler's did: a brand with a time zone and no profile.
OLDER_SHAPE = """
CREATE TABLE organizations (id uuid PRIMARY KEY, name text NOT NULL DEFAULT '', deleted_at timestamptz,
                            updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE brands (id uuid PRIMARY KEY, organization_id uuid NOT NULL, name text NOT NULL,
                     timezone text NOT NULL, deleted_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO brands (id, organization_id, name, timezone)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'Kept', 'Asia/Tokyo');
"""


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    (tmp_path / "0001_older_projection.sql").write_text(OLDER_SHAPE)
    database = await Database.open(database_url, migrations=load_migrations("svc", tmp_path))
    yield database
    await database.close()


async def _handle(db: Database, handlers: dict[str, Any], type_name: str, org: uuid.UUID, **values: Any) -> None:
    envelope = example_event(type_name, organization_id=org, **values)
    data = model_for(type_name).model_validate(envelope.data)
    async with db.transaction() as conn:
        await handlers[type_name](EventContext(conn, envelope, "svc", KafkaSettings()), data)


async def test_the_migration_keeps_old_rows_and_adds_the_kernels_columns(db: Database) -> None:
    row = await db.pool.fetchrow("SELECT name, timezone, profile FROM brands")
    assert dict(row) == {"name": "Kept", "timezone": "Asia/Tokyo", "profile": {}}


async def test_brands_are_kept_whole_and_refused_to_another_organization(db: Database) -> None:
    handlers = bind(tenant_dispatch(), None)
    org, other, brand = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _handle(db, handlers, "OrganizationCreated", org, name="Acme")
    await _handle(
        db, handlers, "BrandProfileCreated", org, brand_profile_id=str(brand), name="Acme", timezone="Europe/Paris"
    )
    row = await db.pool.fetchrow("SELECT organization_id, name, timezone, profile FROM brands WHERE id = $1", brand)
    assert (row["organization_id"], row["name"], row["timezone"]) == (org, "Acme", "Europe/Paris")
    assert row["profile"]["timezone"] == "Europe/Paris" and "content_pillars" in row["profile"]

    with pytest.raises(PermanentError, match=f"brand {brand} belongs to another organization"):
        await _handle(db, handlers, "BrandProfileUpdated", other, brand_profile_id=str(brand), name="Stolen")
    with pytest.raises(PermanentError, match="belongs to another organization"):
        await _handle(db, handlers, "BrandProfileDeleted", other, brand_profile_id=str(brand))
    assert await db.pool.fetchval("SELECT name FROM brands WHERE id = $1", brand) == "Acme"
    assert await db.pool.fetchval("SELECT deleted_at FROM brands WHERE id = $1", brand) is None

    await _handle(db, handlers, "BrandProfileDeleted", org, brand_profile_id=str(brand))
    assert await db.pool.fetchval("SELECT deleted_at IS NOT NULL FROM brands WHERE id = $1", brand)
    await _handle(db, handlers, "OrganizationDeleted", org)
    assert await db.pool.fetchval("SELECT deleted_at IS NOT NULL FROM organizations WHERE id = $1", org)


async def test_the_services_step_follows_only_what_applied_to_its_organization(db: Database) -> None:
    restored: list[uuid.UUID] = []

    async def after(deps: Any, ctx: EventContext, data: Any) -> None:
        restored.append(data.brand_profile_id)

    handlers = bind(tenant_dispatch(after={"BrandProfileRestored": after}), None)
    org, unknown = uuid.uuid4(), uuid.uuid4()
    brand = uuid.uuid4()
    await _handle(db, handlers, "BrandProfileCreated", org, brand_profile_id=str(brand))
    await _handle(db, handlers, "BrandProfileRestored", org, brand_profile_id=str(brand))
    await _handle(db, handlers, "BrandProfileRestored", org, brand_profile_id=str(unknown))  # not seen yet
    assert restored == [brand]
