"""SQL of what content reads of the brands and organizations the kernel's projection keeps
(hopcast_shared.tenants writes them), and of the schedules content keeps of the scheduler's."""

from __future__ import annotations

import uuid
from collections.abc import Collection

import asyncpg

from hopcast_content.adapters.sql import Repository, columns
from hopcast_content.domain.brands import Brand, ScheduleSettings
from hopcast_shared.contract import GenerationMode, MaterialStrategy


def _brand(row: asyncpg.Record) -> Brand:
    return Brand(row["id"], row["organization_id"], row["name"], row["profile"], row["deleted_at"] is not None)


class Projections(Repository):
    async def brand(self, brand_id: uuid.UUID) -> Brand | None:
        return (await self.brands([brand_id])).get(brand_id)

    async def brands(self, brand_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Brand]:
        """These brands, by id (whatever their organization: the caller checks it)."""
        if not brand_ids:
            return {}
        rows = await self.conn.fetch("SELECT * FROM brands WHERE id = ANY($1::uuid[])", list(brand_ids))
        return {r["id"]: _brand(r) for r in rows}

    async def deleted_organizations(self, org_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Those of these organizations that are deleted (an unknown one is not)."""
        if not org_ids:
            return set()
        rows = await self.conn.fetch(
            "SELECT id FROM organizations WHERE id = ANY($1::uuid[]) AND deleted_at IS NOT NULL", list(org_ids)
        )
        return {r["id"] for r in rows}

    async def upsert_schedule(
        self,
        schedule_id: uuid.UUID,
        org_id: uuid.UUID,
        brand_id: uuid.UUID,
        strategy: str,
        mode: str,
        approval_ttl_minutes: int = 2_880,
    ) -> bool:
        """False when the schedule id belongs to another organization (refused)."""
        owner = await self.conn.fetchval("SELECT organization_id FROM schedules WHERE id = $1", schedule_id)
        if owner is not None and owner != org_id:
            return False
        await self.conn.execute(
            """
            INSERT INTO schedules (id, organization_id, brand_profile_id, material_strategy, generation_mode,
                                   approval_ttl_minutes)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (id) DO UPDATE SET brand_profile_id = EXCLUDED.brand_profile_id,
                material_strategy = EXCLUDED.material_strategy, generation_mode = EXCLUDED.generation_mode,
                approval_ttl_minutes = EXCLUDED.approval_ttl_minutes, updated_at = now()
            """,
            schedule_id,
            org_id,
            brand_id,
            strategy,
            mode,
            approval_ttl_minutes,
        )
        return True

    async def set_schedule_deleted(self, schedule_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        """False when the organization has no such schedule."""
        status = await self.conn.execute(
            "UPDATE schedules SET deleted_at = coalesce(deleted_at, now()), updated_at = now() "
            "WHERE id = $1 AND organization_id = $2",
            schedule_id,
            org_id,
        )
        return bool(status != "UPDATE 0")

    async def schedules(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], ScheduleSettings]:
        """The schedules of these (schedule id, organization id), by that pair: another
        organization's schedule id finds nothing."""
        if not keys:
            return {}
        schedule_ids, org_ids = columns(keys, 2)
        rows = await self.conn.fetch(
            """
            SELECT s.* FROM schedules s
            JOIN unnest($1::uuid[], $2::uuid[]) AS k(id, organization_id)
              ON s.id = k.id AND s.organization_id = k.organization_id
            """,
            schedule_ids,
            org_ids,
        )
        return {
            (r["id"], r["organization_id"]): ScheduleSettings(
                MaterialStrategy(r["material_strategy"]),
                r["generation_mode"] == GenerationMode.MANUAL.value,
                r["approval_ttl_minutes"],
            )
            for r in rows
        }
