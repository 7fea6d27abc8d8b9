"""Content in memory: repositories that subclass the real ones and keep their rows in a
`World`, so that handlers run without a database (cosmicpython's fakes). What the SQL
guarantees beyond that (locks, one statement per event, the HNSW search) is the integration
tests' to check, on the real database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from hopcast_content.adapters.dedup import Duplicates
from hopcast_content.adapters.embedders import HashingEmbedder
from hopcast_content.adapters.materials import Materials
from hopcast_content.adapters.posts import Posts
from hopcast_content.adapters.projections import Projections
from hopcast_content.adapters.runs import Run, Runs
from hopcast_content.config import ContentSettings
from hopcast_content.domain.angles import AngleStats
from hopcast_content.domain.brands import Brand, ScheduleSettings
from hopcast_content.domain.drafting import MaterialText, MediaRef, TemplateGenerator
from hopcast_content.domain.duplicates import DraftToCheck, Verdict
from hopcast_content.domain.embedding import Embedding, cosine
from hopcast_content.domain.materials import Material, MaterialStatus
from hopcast_content.domain.selection import Candidate
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_shared.contract import Angle, MaterialStrategy
from hopcast_shared.contract.examples import example_event
from hopcast_shared.contract.registry import model_for
from hopcast_shared.db import Conn
from hopcast_shared.handling import EventContext
from hopcast_shared.projections import TenantProjection
from hopcast_shared.settings import KafkaSettings

NO_CONNECTION = cast(Conn, None)


@dataclass
class StoredMaterial:
    material: Material
    max_uses: int | None
    status: MaterialStatus = MaterialStatus.UPLOADED
    failure_reason: str | None = None
    content_hash: str | None = None
    deleted: bool = False
    usage_count: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class World:
    """Every row content keeps, in memory."""

    brands: dict[uuid.UUID, Brand] = field(default_factory=dict)
    deleted_organizations: set[uuid.UUID] = field(default_factory=set)
    schedules: dict[tuple[uuid.UUID, uuid.UUID], ScheduleSettings] = field(default_factory=dict)
    materials: dict[uuid.UUID, StoredMaterial] = field(default_factory=dict)
    runs: dict[uuid.UUID, Run] = field(default_factory=dict)
    results: dict[uuid.UUID, str] = field(default_factory=dict)
    pending_posts: list[dict[str, Any]] = field(default_factory=list)
    embeddings: list[Embedding] = field(default_factory=list)

    def owner(self, kind: str, row_id: uuid.UUID) -> uuid.UUID | None:
        rows: Mapping[uuid.UUID, Any] = {
            "brand": {k: v.organization_id for k, v in self.brands.items()},
            "schedule": {k: org for (k, org) in self.schedules},
            "material": {k: v.material.organization_id for k, v in self.materials.items()},
            "run": {k: v.organization_id for k, v in self.runs.items()},
            "pending post": {p["id"]: p["organization_id"] for p in self.pending_posts},
        }[kind]
        return rows.get(row_id)


class InMemory:
    """What every fake repository has: the world instead of a connection."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.conn = NO_CONNECTION

    async def owned_by_another(self, kind: str, row_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        owner = self.world.owner(kind, row_id)
        return owner is not None and owner != org_id


class FakeTenants(InMemory, TenantProjection):
    """The kernel's organization and brand projection, in the world."""

    async def upsert_organization(self, org_id: uuid.UUID, name: str) -> None:
        """The world keeps no organization names."""

    async def set_organization_deleted(self, org_id: uuid.UUID, deleted: bool) -> None:
        (self.world.deleted_organizations.add if deleted else self.world.deleted_organizations.discard)(org_id)

    async def upsert_brand(
        self, brand_id: uuid.UUID, org_id: uuid.UUID, name: str, timezone: str, profile: dict[str, Any]
    ) -> bool:
        if await self.brand_of_another(brand_id, org_id):
            return False
        self.world.brands[brand_id] = Brand(brand_id, org_id, name, profile)
        return True

    async def set_brand_deleted(self, brand_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        brand = self.world.brands.get(brand_id)
        if brand is None or brand.organization_id != org_id:
            return False
        self.world.brands[brand_id] = replace(brand, deleted=deleted)
        return True

    async def brand_of_another(self, brand_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        return await self.owned_by_another("brand", brand_id, org_id)


class FakeProjections(InMemory, Projections):
    async def brands(self, brand_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Brand]:
        return {b: self.world.brands[b] for b in brand_ids if b in self.world.brands}

    async def deleted_organizations(self, org_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        return set(org_ids) & self.world.deleted_organizations

    async def upsert_schedule(
        self,
        schedule_id: uuid.UUID,
        org_id: uuid.UUID,
        brand_id: uuid.UUID,
        strategy: str,
        mode: str,
        approval_ttl_minutes: int = 2_880,
    ) -> bool:
        if await self.owned_by_another("schedule", schedule_id, org_id):
            return False
        self.world.schedules[(schedule_id, org_id)] = ScheduleSettings(
            MaterialStrategy(strategy), mode == "manual", approval_ttl_minutes
        )
        return True

    async def schedules(
        self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[tuple[uuid.UUID, uuid.UUID], ScheduleSettings]:
        return {k: self.world.schedules[k] for k in keys if k in self.world.schedules}


class FakeMaterials(InMemory, Materials):
    async def owner(self, material_id: uuid.UUID) -> uuid.UUID | None:
        return self.world.owner("material", material_id)

    async def insert(self, values: dict[str, Any]) -> bool:
        if values["id"] in self.world.materials:
            return False
        columns = ("id", "type", "title", "body")
        media = tuple(MediaRef(m["url"], m["alt_text"], m["mime_type"]) for m in values["media"])
        text = MaterialText(*(values[c] for c in columns), media, values["content_pillar"])
        material = Material(text, values["organization_id"], values["brand_profile_id"])
        self.world.materials[values["id"]] = StoredMaterial(material, values["max_uses"])
        return True

    async def get(self, material_id: uuid.UUID, org_id: uuid.UUID, *, lock: bool = False) -> Material | None:
        stored = self.world.materials.get(material_id)
        return stored.material if stored and stored.material.organization_id == org_id else None

    async def to_draft(self, keys: Collection[tuple[uuid.UUID, uuid.UUID]]) -> dict[uuid.UUID, Material]:
        found = {}
        for material_id, org_id in keys:
            if (material := await self.get(material_id, org_id)) is not None:
                vectors = [
                    e.embedding for e in self.world.embeddings if e.kind == "MATERIAL" and e.source_id == material_id
                ]
                found[material_id] = replace(material, embedding=vectors[0] if vectors else None)
        return found

    async def set_status(self, material_id: uuid.UUID, status: MaterialStatus, **found: str | None) -> None:
        """With the failure reason or the content hash, as the real one takes them."""
        stored = self.world.materials[material_id]
        stored.status, stored.failure_reason = status, found.get("failure_reason")
        stored.content_hash = found.get("content_hash") or stored.content_hash

    async def ready(self, embedding: Embedding) -> None:
        self.world.embeddings.append(embedding)
        await self.set_status(embedding.material_id, MaterialStatus.READY, content_hash=embedding.content_hash)

    async def set_deleted(self, material_id: uuid.UUID, org_id: uuid.UUID, deleted: bool) -> bool:
        if await self.get(material_id, org_id) is None:
            return False
        self.world.materials[material_id].deleted = deleted
        return True

    async def selectable_candidates(
        self, brands: Collection[tuple[uuid.UUID, uuid.UUID]], *, in_flight_hours: int = 168
    ) -> dict[uuid.UUID, list[Candidate]]:
        in_flight = {p["material_id"] for p in self.world.pending_posts if p.get("ended_at") is None}
        found: dict[uuid.UUID, list[Candidate]] = {}
        for s in self.world.materials.values():
            m = s.material
            if (
                (m.brand_profile_id, m.organization_id) in brands
                and s.status is MaterialStatus.READY
                and not s.deleted
                and (s.max_uses is None or s.usage_count < s.max_uses)
                and m.id not in in_flight
            ):
                candidate = Candidate(
                    m.id, s.usage_count, None, s.created_at, m.text.content_pillar, media=m.text.media
                )
                found.setdefault(m.brand_profile_id, []).append(candidate)
        return found


class FakeRuns(InMemory, Runs):
    async def start(self, runs: Sequence[Run]) -> set[uuid.UUID]:
        fresh = {run.run_id for run in runs if run.run_id not in self.world.runs}
        for run in runs:
            self.world.runs.setdefault(run.run_id, run)
        return fresh

    async def of_another(self, runs: Collection[tuple[uuid.UUID, uuid.UUID]]) -> set[uuid.UUID]:
        return {run_id for run_id, org in runs if self.world.runs[run_id].organization_id != org}

    async def finish(self, results: Mapping[uuid.UUID, str]) -> None:
        self.world.results.update(results)

    async def lock_organizations(self, org_ids: Collection[uuid.UUID]) -> None:
        """One test, one task: nothing runs beside it."""

    async def recent_pillar_counts(
        self, brand_ids: Collection[uuid.UUID], since: datetime
    ) -> dict[uuid.UUID, dict[str | None, int]]:
        counts: dict[uuid.UUID, dict[str | None, int]] = {b: {} for b in brand_ids}
        for p in self.world.pending_posts:
            if p["brand_profile_id"] in counts:
                pillars = counts[p["brand_profile_id"]]
                pillars[p["content_pillar"]] = pillars.get(p["content_pillar"], 0) + 1
        return counts

    async def insert_drafts(self, posts: Sequence[Mapping[str, Any]], embeddings: Sequence[Embedding]) -> None:
        self.world.pending_posts += [dict(p) for p in posts]
        self.world.embeddings += embeddings

    async def end(
        self, run_id: uuid.UUID, org_id: uuid.UUID, outcome: str, ended_at: datetime, *, published: bool
    ) -> bool:
        ended = [p for p in self.world.pending_posts if p["run_id"] == run_id and p["organization_id"] == org_id]
        for p in ended:
            p["ended_at"] = p.get("ended_at") or ended_at
            if published and not p.get("use_counted"):
                p["use_counted"] = True
                self.world.materials[p["material_id"]].usage_count += 1
            if not published:
                self.world.embeddings = [e for e in self.world.embeddings if e.source_id != p["id"]]
        return bool(ended)


class FakePosts(InMemory, Posts):
    async def angle_stats(
        self, brands: Collection[tuple[uuid.UUID, uuid.UUID]]
    ) -> dict[uuid.UUID, dict[Angle, AngleStats]]:
        return {brand_id: {} for brand_id, _ in brands}  # no post has engagement yet


class FakeDuplicates(InMemory, Duplicates):
    """The check's rules over the world's embeddings, by brute force."""

    async def check(
        self, org_id: uuid.UUID, since: datetime, draft: DraftToCheck, settings: ContentSettings
    ) -> Verdict:
        drafts = [e for e in self.world.embeddings if e.organization_id == org_id and e.kind != "MATERIAL"]
        copies = [e for e in drafts if e.material_hash == draft.material_hash and e.material_id != draft.material_id]
        exact = bool(copies) or any(e.content_hash == draft.draft_hash for e in drafts)
        return Verdict(max((cosine(e.embedding, draft.draft_vector) for e in drafts), default=0.0), 0.0, exact)


@dataclass
class Content:
    """Content's handlers over a world in memory: `deps` for the handlers, `ctx` for an event."""

    world: World
    deps: ContentDeps

    def ctx(self, type_name: str, organization_id: uuid.UUID, **values: Any) -> tuple[EventContext, Any]:
        """An event as the consumer hands it to a handler: its context and its data."""
        envelope = example_event(type_name, organization_id=organization_id, **values)
        data = model_for(type_name).model_validate(envelope.data)
        return EventContext(NO_CONNECTION, envelope, "content", KafkaSettings()), data

    @staticmethod
    def emitted(*contexts: EventContext) -> list[tuple[str, dict[str, Any]]]:
        """The events the handlers emitted, in order: (type, data)."""
        return [(row.event_type, json.loads(row.payload)["data"]) for ctx in contexts for row in ctx.outbox]


def in_memory(settings: ContentSettings | None = None, **deps: Any) -> Content:
    world = World()
    settings = settings or ContentSettings()
    return Content(
        world,
        ContentDeps(
            settings,
            deps.pop("embedder", HashingEmbedder(settings.embedding_dim)),
            TemplateGenerator(),
            projections=lambda conn: FakeProjections(world),
            tenants=lambda conn: FakeTenants(world),
            materials=lambda conn: FakeMaterials(world),
            runs=lambda conn: FakeRuns(world),
            posts=lambda conn: FakePosts(world),
            duplicates=lambda conn: FakeDuplicates(world),
            **deps,
        ),
    )


@pytest.fixture
def content() -> Content:
    return in_memory()


@pytest.fixture
def content_with() -> Callable[..., Content]:
    """Content in memory with other settings or dependencies."""
    return in_memory
