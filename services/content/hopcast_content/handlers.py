"""Content's service layer: each inbound event loads, decides and writes in the consumer's
transaction (the events it emits go to the outbox in the same transaction).

The heart is `schedule_due`: a run picks a material by the schedule's strategy, chooses an
angle, drafts, embeds and checks near-duplicates in the organization, trying the next
material while the draft is too similar; it ends in one PendingPostCreated, or in one
ScheduleRunSkipped plus the run's ScheduleRunCompleted. The `runs` row and the unique run_id
of pending posts make that once per run however often ScheduleDue is delivered. ScheduleDue
is handled in batches: what the runs read is loaded in a few statements for all of them (a
single event is a batch of one), and each run decides as if the batch's earlier runs were
handled before it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import asyncpg

from hopcast_content import metrics
from hopcast_content.adapters import dedup
from hopcast_content.adapters import repository as repo
from hopcast_content.config import ContentSettings
from hopcast_content.domain.angles import AngleStats, choose_angle
from hopcast_content.domain.drafting import BrandVoice, DraftRequest, Generator, MaterialText, finalise
from hopcast_content.domain.duplicates import band
from hopcast_content.domain.embedding import Embedder, EmbeddingError, content_hash
from hopcast_content.domain.materials import (
    PUBLISHED_OUTCOMES,
    SKIP_OUTCOMES,
    MaterialStatus,
    embedding_text,
    processing_problem,
    run_rng,
)
from hopcast_content.domain.selection import Candidate, PillarTarget, Strategy, order_candidates, pillar_named
from hopcast_shared import projections
from hopcast_shared.consumer import BatchedHandler, EventContext, Handler, PermanentError
from hopcast_shared.contract import (
    Angle,
    BrandProfileCreated,
    BrandProfileDeleted,
    BrandProfileRestored,
    BrandProfileUpdated,
    EngagementUpdated,
    GenerationMode,
    MaterialArchived,
    MaterialDeleted,
    MaterialRestored,
    MaterialSubmitted,
    OrganizationCreated,
    OrganizationDeleted,
    OrganizationRestored,
    PendingPostCreated,
    Platform,
    PostPublished,
    RunOutcome,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleDue,
    ScheduleRunCompleted,
    ScheduleRunSkipped,
    ScheduleUpdated,
    SkipReason,
)
from hopcast_shared.db import Conn
from hopcast_shared.topics import ANALYTICS, CONTENT

log = logging.getLogger(__name__)


class EmbedderUnavailable(ConnectionError):
    """A remote embedder failed while drafting: the infrastructure's fault, not the event's.
    The consumer retries and then leaves the message for Kafka to deliver again (never the
    DLQ, which would leave the run without an end)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


def material_text(row: asyncpg.Record) -> MaterialText:
    return MaterialText(
        material_id=row["id"],
        type=row["type"],
        title=row["title"],
        body=row["body"],
        media_urls=tuple(row["media_urls"] or ()),
        content_pillar=row["content_pillar"],
    )


def _active_brand(brand: asyncpg.Record | None, org_id: uuid.UUID) -> bool:
    """The brand exists, is the organization's own, and is not deleted."""
    return brand is not None and brand["organization_id"] == org_id and brand["deleted_at"] is None


def _strategy(schedule: asyncpg.Record | None) -> Strategy:
    return Strategy(schedule["material_strategy"]) if schedule else Strategy.ROUND_ROBIN


@dataclass
class RunBatch:
    """What the runs of one batch read, loaded once; and what its earlier runs leave for the
    later ones, so that they decide as if handled one after another: a material drafted is
    in flight (not selectable), a draft counts for its brand's pillars, and the duplicate
    check of a later run of the same organization sees it (written before that check)."""

    since: datetime
    deleted_organizations: set[uuid.UUID]
    brands: dict[uuid.UUID, asyncpg.Record]
    candidates: dict[uuid.UUID, list[Candidate]]
    schedules: dict[tuple[uuid.UUID, uuid.UUID], asyncpg.Record]
    recent_pillars: dict[uuid.UUID, dict[str | None, int]]
    angle_stats: dict[uuid.UUID, dict[Angle, AngleStats]]
    results: dict[uuid.UUID, str] = field(default_factory=dict)
    """Each handled run's result: DRAFTED or the skip reason."""
    in_flight: set[uuid.UUID] = field(default_factory=set)
    unwritten: list[tuple[dict[str, Any], repo.Embedding]] = field(default_factory=list)

    def selectable(self, brand_id: uuid.UUID) -> list[Candidate]:
        return [c for c in self.candidates.get(brand_id, ()) if c.material_id not in self.in_flight]

    def drafted(self, post: dict[str, Any], embedding: repo.Embedding) -> None:
        self.in_flight.add(post["material_id"])
        pillars = self.recent_pillars.get(post["brand_profile_id"])
        if pillars is not None:
            pillars[post["content_pillar"]] = pillars.get(post["content_pillar"], 0) + 1
        self.unwritten.append((post, embedding))

    async def write_drafts(self, conn: Conn, organization_id: uuid.UUID | None = None) -> None:
        """Write the drafts not written yet: all of them, or (with an organization) all of
        them if one is that organization's, else none."""
        if organization_id is not None and all(p["organization_id"] != organization_id for p, _ in self.unwritten):
            return
        await repo.insert_pending_posts(conn, [post for post, _ in self.unwritten])
        await repo.insert_embeddings(conn, [embedding for _, embedding in self.unwritten])
        self.unwritten.clear()


class ContentService:
    """The handlers, with what they need: settings, the embedder and the generator."""

    def __init__(self, settings: ContentSettings, embedder: Embedder, generator: Generator) -> None:
        if embedder.dim != settings.embedding_dim:
            raise ValueError(
                f"embedder makes {embedder.dim} dimensions, CONTENT_EMBEDDING_DIM is {settings.embedding_dim}"
            )
        self.settings = settings
        self.embedder = embedder
        self.generator = generator

    def handlers(self) -> dict[str, Handler]:
        return {
            "OrganizationCreated": self.organization_created,
            "OrganizationDeleted": self.organization_deleted,
            "OrganizationRestored": self.organization_restored,
            "BrandProfileCreated": self.brand_upserted,
            "BrandProfileUpdated": self.brand_upserted,
            "BrandProfileDeleted": self.brand_deleted,
            "BrandProfileRestored": self.brand_restored,
            "ScheduleCreated": self.schedule_upserted,
            "ScheduleUpdated": self.schedule_upserted,
            "ScheduleDeleted": self.schedule_deleted,
            "MaterialSubmitted": self.material_submitted,
            "MaterialArchived": self.material_archived,
            "MaterialDeleted": self.material_deleted,
            "MaterialRestored": self.material_restored,
            "ScheduleDue": BatchedHandler(self.schedule_due),
            "PostPublished": self.post_published,
            "ScheduleRunCompleted": self.run_completed,
            "EngagementUpdated": self.engagement_updated,
        }

    # --- organizations, brands, schedules (projections) ------------------------------------------

    async def organization_created(self, ctx: EventContext, data: OrganizationCreated) -> None:
        await projections.upsert_organization(ctx.conn, data.organization_id, data.name)

    async def organization_deleted(self, ctx: EventContext, data: OrganizationDeleted) -> None:
        await projections.set_organization_deleted(ctx.conn, data.organization_id, True)

    async def organization_restored(self, ctx: EventContext, data: OrganizationRestored) -> None:
        await projections.set_organization_deleted(ctx.conn, data.organization_id, False)

    async def brand_upserted(self, ctx: EventContext, data: BrandProfileCreated | BrandProfileUpdated) -> None:
        profile = data.model_dump(mode="json", exclude={"brand_profile_id", "name"})
        ok = await repo.upsert_brand(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, data.name, profile)
        if not ok:
            raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")

    async def brand_deleted(self, ctx: EventContext, data: BrandProfileDeleted) -> None:
        if not await projections.set_brand_deleted(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, True):
            await _refuse_if_another_organizations(ctx, "brand", data.brand_profile_id)

    async def brand_restored(self, ctx: EventContext, data: BrandProfileRestored) -> None:
        if not await projections.set_brand_deleted(ctx.conn, data.brand_profile_id, ctx.envelope.organizationid, False):
            await _refuse_if_another_organizations(ctx, "brand", data.brand_profile_id)

    async def schedule_upserted(self, ctx: EventContext, data: ScheduleCreated | ScheduleUpdated) -> None:
        ok = await repo.upsert_schedule(
            ctx.conn,
            data.schedule_id,
            ctx.envelope.organizationid,
            data.brand_profile_id,
            str(data.material_strategy),
            str(data.generation_mode),
        )
        if not ok:
            raise PermanentError(f"schedule {data.schedule_id} belongs to another organization")

    async def schedule_deleted(self, ctx: EventContext, data: ScheduleDeleted) -> None:
        if not await repo.set_schedule_deleted(ctx.conn, data.schedule_id, ctx.envelope.organizationid):
            await _refuse_if_another_organizations(ctx, "schedule", data.schedule_id)

    # --- materials --------------------------------------------------------------------------------

    async def material_submitted(self, ctx: EventContext, data: MaterialSubmitted) -> None:
        org = ctx.envelope.organizationid
        owner = await repo.material_owner(ctx.conn, data.material_id)
        if owner is not None and owner != org:
            raise PermanentError(f"material {data.material_id} belongs to another organization")
        brand = await repo.brand(ctx.conn, data.brand_profile_id)
        if brand is not None and brand["organization_id"] != org:
            raise PermanentError(f"brand {data.brand_profile_id} belongs to another organization")
        inserted = await repo.insert_material(
            ctx.conn,
            {
                "id": data.material_id,
                "organization_id": org,
                "brand_profile_id": data.brand_profile_id,
                "type": str(data.type),
                "title": data.title,
                "body": data.body,
                "media_urls": list(data.media_urls),
                "content_pillar": data.content_pillar,
                "max_uses": data.max_uses,
            },
        )
        if not inserted:
            log.info("material %s was submitted before; the new submission is ignored", data.material_id)
            return
        metrics.MATERIALS.labels(MaterialStatus.UPLOADED.value).inc()
        if self.settings.process_inline:
            row = await repo.material(ctx.conn, data.material_id, org, lock=True)
            assert row is not None
            await self.process_material(ctx.conn, row)

    async def process_material(self, conn: Conn, row: asyncpg.Record) -> MaterialStatus:
        """UPLOADED -> PROCESSING -> READY (embedded) or FAILED with the reason, in the
        caller's transaction."""
        await repo.set_material_status(conn, row["id"], MaterialStatus.PROCESSING.value)
        material = material_text(row)
        problem = processing_problem(material)
        text = embedding_text(material)
        if problem is None:
            try:
                [vector] = await self.embedder.embed([text])
            except EmbeddingError as exc:
                problem = f"embedding failed: {exc}"
        if problem is not None:
            await repo.set_material_status(conn, row["id"], MaterialStatus.FAILED.value, failure_reason=problem)
            metrics.MATERIALS.labels(MaterialStatus.FAILED.value).inc()
            return MaterialStatus.FAILED
        digest = content_hash(text)
        await repo.insert_embedding(
            conn,
            repo.Embedding(
                organization_id=row["organization_id"],
                brand_profile_id=row["brand_profile_id"],
                kind="MATERIAL",
                source_id=row["id"],
                material_id=row["id"],
                content_hash=digest,
                material_hash=digest,
                embedding=vector,
            ),
        )
        await repo.set_material_status(conn, row["id"], MaterialStatus.READY.value, content_hash=digest)
        metrics.MATERIALS.labels(MaterialStatus.READY.value).inc()
        return MaterialStatus.READY

    async def material_archived(self, ctx: EventContext, data: MaterialArchived) -> None:
        row = await repo.material(ctx.conn, data.material_id, ctx.envelope.organizationid, lock=True)
        if row is None:
            await _refuse_unknown_material(ctx, data.material_id)
        await repo.set_material_status(ctx.conn, data.material_id, MaterialStatus.ARCHIVED.value)

    async def material_deleted(self, ctx: EventContext, data: MaterialDeleted) -> None:
        if not await repo.set_material_deleted(ctx.conn, data.material_id, ctx.envelope.organizationid, True):
            await _refuse_unknown_material(ctx, data.material_id)

    async def material_restored(self, ctx: EventContext, data: MaterialRestored) -> None:
        if not await repo.set_material_deleted(ctx.conn, data.material_id, ctx.envelope.organizationid, False):
            await _refuse_unknown_material(ctx, data.material_id)

    # --- a run: pick, draft, check, emit ----------------------------------------------------------

    async def schedule_due(self, items: Sequence[tuple[EventContext, ScheduleDue]]) -> None:
        """The runs of a batch (one event is a batch of one), in its order: as if handled one
        after another, with what they read loaded once for all of them and their rows
        written together; only a run's material and duplicate check are its own statements."""
        started = time.perf_counter()
        conn = items[0][0].conn
        runs: dict[uuid.UUID, repo.Run] = {}
        for ctx, data in items:
            runs.setdefault(
                data.run_id,
                repo.Run(
                    data.run_id, ctx.envelope.organizationid, data.schedule_id, data.brand_profile_id, data.due_at
                ),
            )
        # A run handled before is one of the organization's, or refused: never taken for a
        # redelivery of another organization's run (in this batch or before it).
        for ctx, data in items:
            if runs[data.run_id].organization_id != ctx.envelope.organizationid:
                _refuse_another_organizations("run", data.run_id)
        fresh = await repo.start_runs(conn, list(runs.values()))
        seen = [(data.run_id, ctx.envelope.organizationid) for ctx, data in items if data.run_id not in fresh]
        if seen and (of_another := await repo.runs_of_another(conn, seen)):
            _refuse_another_organizations("run", min(of_another))
        todo: list[tuple[EventContext, ScheduleDue]] = []
        for ctx, data in items:
            if data.run_id in fresh:
                fresh.discard(data.run_id)  # a later copy of the run in this batch is not handled again
                todo.append((ctx, data))
            else:
                log.info("run %s was handled before", data.run_id)
        if not todo:
            return
        await repo.lock_organizations(conn, {ctx.envelope.organizationid for ctx, _ in todo})
        batch = await self._load_runs(conn, todo)
        share = (time.perf_counter() - started) / len(todo)
        for ctx, data in todo:
            run_started = time.perf_counter()
            reason = await self._draft_run(ctx, data, batch)
            if reason is not None:
                await self._skip(ctx, data, reason, batch)
            metrics.RUN_SECONDS.observe(share + time.perf_counter() - run_started)
        await batch.write_drafts(conn)
        await repo.finish_runs(conn, batch.results)

    async def _load_runs(self, conn: Conn, runs: Sequence[tuple[EventContext, ScheduleDue]]) -> RunBatch:
        """What the runs read, once for all of them; runs that will be skipped load no more
        than they need to be."""
        deleted = await repo.deleted_organizations(conn, {ctx.envelope.organizationid for ctx, _ in runs})
        live = [(ctx.envelope.organizationid, data) for ctx, data in runs if ctx.envelope.organizationid not in deleted]
        brands = await repo.brands(conn, {data.brand_profile_id for _, data in live})
        live = [(org, data) for org, data in live if _active_brand(brands.get(data.brand_profile_id), org)]
        candidates = await repo.selectable_candidates(
            conn, {(data.brand_profile_id, org) for org, data in live}, in_flight_hours=self.settings.in_flight_hours
        )
        drafting = [(org, data) for org, data in live if data.brand_profile_id in candidates]
        schedules = await repo.schedules(conn, {(data.schedule_id, org) for org, data in drafting})
        balanced = {
            data.brand_profile_id
            for org, data in drafting
            if _strategy(schedules.get((data.schedule_id, org))) is Strategy.PILLAR_BALANCED
        }
        since = now_utc() - timedelta(days=self.settings.dedup_window_days)
        return RunBatch(
            since=since,
            deleted_organizations=deleted,
            brands=brands,
            candidates=candidates,
            schedules=schedules,
            recent_pillars=await repo.recent_pillar_counts(conn, balanced, since),
            angle_stats=await repo.angle_stats(conn, {(data.brand_profile_id, org) for org, data in drafting}),
        )

    async def _draft_run(self, ctx: EventContext, data: ScheduleDue, batch: RunBatch) -> SkipReason | None:
        """Draft the run's post (and emit it); returns why not when it cannot."""
        conn, org = ctx.conn, ctx.envelope.organizationid
        if org in batch.deleted_organizations:
            return SkipReason.ORGANIZATION_INACTIVE
        brand = batch.brands.get(data.brand_profile_id)
        if brand is None or not _active_brand(brand, org):
            return SkipReason.BRAND_INACTIVE
        candidates = batch.selectable(data.brand_profile_id)
        if not candidates:
            return SkipReason.NO_READY_MATERIAL

        schedule = batch.schedules.get((data.schedule_id, org))
        strategy = _strategy(schedule)
        manual = schedule is not None and schedule["generation_mode"] == GenerationMode.MANUAL.value
        profile: dict[str, Any] = brand["profile"]
        targets = [PillarTarget(p["name"], float(p["percentage"])) for p in profile.get("content_pillars") or ()]
        since = batch.since
        recent: dict[str, int] = {}
        if strategy is Strategy.PILLAR_BALANCED:
            for pillar, n in batch.recent_pillars[data.brand_profile_id].items():
                key = pillar_named(pillar, targets)
                recent[key] = recent.get(key, 0) + n
        rng = run_rng(data.run_id)
        ordered = order_candidates(
            strategy, candidates, rng, targets=targets, recent_pillars=recent, target_pillar=data.target_pillar
        )
        choice = choose_angle(batch.angle_stats[data.brand_profile_id], rng)
        voice = BrandVoice.from_profile(brand["name"], profile)
        platforms = tuple(Platform(p) for p in data.platforms)

        for candidate in ordered[: self.settings.max_candidates]:
            row = await repo.material_to_draft(conn, candidate.material_id, org)
            assert row is not None
            material = material_text(row)
            request = DraftRequest(material, voice, platforms, choice.angle, choice.reason)
            draft = finalise(await self.generator.draft(request), request)
            try:
                [vector] = await self.embedder.embed([draft.content])
            except EmbeddingError as exc:
                raise EmbedderUnavailable(f"embedding the draft failed: {exc}") from exc
            material_embedding = row["material_embedding"]
            material_hash = content_hash(embedding_text(material))
            # The media are part of the post: one caption over two pictures is two posts.
            draft_hash = content_hash("\n".join([draft.content, *draft.media_urls]))
            # The check must see the drafts the batch's earlier runs made in this organization.
            await batch.write_drafts(conn, org)
            checked = time.perf_counter()
            verdict = await dedup.check(
                conn,
                org,
                since,
                draft_vector=vector,
                draft_hash=draft_hash,
                material_id=material.material_id,
                material_vector=material_embedding.to_list() if material_embedding is not None else None,
                material_hash=material_hash,
                exact_max_rows=self.settings.dedup_exact_max_rows,
                ef_search=self.settings.hnsw_ef_search,
                max_scan_tuples=self.settings.hnsw_max_scan_tuples,
            )
            metrics.DEDUP_SECONDS.observe(time.perf_counter() - checked)
            metrics.SIMILARITY.labels(band(verdict.draft_similarity, self.settings.similarity_threshold).value).inc()
            if verdict.too_similar(self.settings.similarity_threshold):
                log.info(
                    "run %s: material %s too similar (draft %.3f, material %.3f, exact copy %s); next candidate",
                    data.run_id,
                    material.material_id,
                    verdict.draft_similarity,
                    verdict.material_similarity,
                    verdict.exact_copy,
                )
                continue

            pending_post_id = uuid.uuid4()
            batch.drafted(
                {
                    "id": pending_post_id,
                    "run_id": data.run_id,
                    "organization_id": org,
                    "brand_profile_id": data.brand_profile_id,
                    "schedule_id": data.schedule_id,
                    "material_id": material.material_id,
                    "content_pillar": material.content_pillar,
                    "content": draft.content,
                    "hashtags": list(draft.hashtags),
                    "media_urls": list(draft.media_urls),
                    "platforms": [p.value for p in platforms],
                    "angle": choice.angle.value,
                    "angle_reason": choice.reason,
                    "max_similarity": verdict.draft_similarity,
                    "requires_approval": manual,
                    "due_at": data.due_at,
                },
                repo.Embedding(
                    organization_id=org,
                    brand_profile_id=data.brand_profile_id,
                    kind="PENDING_POST",
                    source_id=pending_post_id,
                    material_id=material.material_id,
                    content_hash=draft_hash,
                    material_hash=material_hash,
                    embedding=vector,
                ),
            )
            await ctx.emit(
                PendingPostCreated(
                    pending_post_id=pending_post_id,
                    run_id=data.run_id,
                    schedule_id=data.schedule_id,
                    brand_profile_id=data.brand_profile_id,
                    material_id=material.material_id,
                    due_at=data.due_at,
                    content=draft.content,
                    hashtags=list(draft.hashtags),
                    media_urls=list(draft.media_urls),
                    platforms=list(platforms),
                    angle=choice.angle,
                    angle_reason=choice.reason,
                    max_similarity=round(verdict.draft_similarity, 6),
                    requires_approval=manual,
                ),
                correlation_id=str(data.run_id),
                topics=[CONTENT],
            )
            batch.results[data.run_id] = "DRAFTED"
            metrics.RUNS.labels("DRAFTED").inc()
            return None
        return SkipReason.ALL_CANDIDATES_DUPLICATE

    async def _skip(self, ctx: EventContext, data: ScheduleDue, reason: SkipReason, batch: RunBatch) -> None:
        """The run ends here: ScheduleRunSkipped, and the run's one ScheduleRunCompleted."""
        await ctx.emit(
            ScheduleRunSkipped(
                run_id=data.run_id, schedule_id=data.schedule_id, brand_profile_id=data.brand_profile_id, reason=reason
            ),
            correlation_id=str(data.run_id),
            topics=[CONTENT],
        )
        await ctx.emit(
            ScheduleRunCompleted(
                run_id=data.run_id,
                schedule_id=data.schedule_id,
                brand_profile_id=data.brand_profile_id,
                outcome=SKIP_OUTCOMES[reason],
                due_at=data.due_at,
                completed_at=now_utc(),
            ),
            correlation_id=str(data.run_id),
            topics=[ANALYTICS],
        )
        batch.results[data.run_id] = reason.value
        metrics.RUNS.labels(reason.value).inc()
        log.info("run %s skipped: %s", data.run_id, reason.value)

    # --- what happened to the drafts -------------------------------------------------------------

    async def post_published(self, ctx: EventContext, data: PostPublished) -> None:
        """Published on one platform: the post is recorded (and its draft's embedding kept as
        the POST's); the material's use is counted once per pending post, whatever the
        platforms (a READY material at max_uses becomes USED). One statement."""
        published = await repo.publish_post(ctx.conn, ctx.envelope.organizationid, data)
        if published.of_another is not None:
            _refuse_another_organizations(published.of_another, _named_id(data, published.of_another))
        if not published.known:
            log.info("PostPublished for a pending post content does not know (%s)", data.pending_post_id)

    async def run_completed(self, ctx: EventContext, data: ScheduleRunCompleted) -> None:
        """A run ended: its draft is no longer in flight, so its material may be picked again.
        If it published, its use counts (in case PostPublished is still on its way); if not,
        the draft no longer counts as a recent post for the duplicate check. One statement."""
        # Never published (rejected, no credits, failed): it is no post to keep away from.
        published = RunOutcome(data.outcome) in PUBLISHED_OUTCOMES
        ended = await repo.end_run(
            ctx.conn,
            data.run_id,
            ctx.envelope.organizationid,
            str(data.outcome),
            data.completed_at,
            published=published,
        )
        if not ended:
            await _refuse_if_another_organizations(ctx, "run", data.run_id)

    async def engagement_updated(self, ctx: EventContext, data: EngagementUpdated) -> None:
        of_another = await repo.record_engagement(ctx.conn, ctx.envelope.organizationid, data)
        if of_another is not None:
            _refuse_another_organizations(of_another, _named_id(data, of_another))


# --- ids of another organization --------------------------------------------------------------------
# An event naming an id another organization has is refused (a dead letter saying so): never
# applied to that organization's rows, and never ignored as if the id were unknown.


def _refuse_another_organizations(kind: str, named: uuid.UUID) -> NoReturn:
    raise PermanentError(f"{kind} {named} belongs to another organization")


async def _refuse_if_another_organizations(ctx: EventContext, kind: str, named: uuid.UUID) -> None:
    if await repo.owned_by_another(ctx.conn, kind, named, ctx.envelope.organizationid):
        _refuse_another_organizations(kind, named)


async def _refuse_unknown_material(ctx: EventContext, material_id: uuid.UUID) -> NoReturn:
    await _refuse_if_another_organizations(ctx, "material", material_id)
    raise PermanentError(f"unknown material {material_id} for this organization")


def _named_id(data: PostPublished | EngagementUpdated, kind: str) -> uuid.UUID:
    """The id of that kind the event names."""
    named: uuid.UUID = getattr(data, f"{kind.replace(' ', '_')}_id" if kind != "brand" else "brand_profile_id")
    return named
