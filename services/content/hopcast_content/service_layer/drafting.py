"""One run's draft: order the brand's selectable materials by the schedule's strategy, pick an
angle, and draft from each candidate in turn until a draft is not too similar to what the
organization drafted or published in the window; then emit PendingPostCreated. A candidate
whose media suit none of the run's platforms is passed over (Instagram alone and a text); one
that suits some goes to those, the others left out with why, before anything is debited.

A batch's first drafts are written ahead (`draft_ahead`), so that the embedder gets them in one
call: the runs then find their draft and its vector ready, and decide as before.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hopcast_content import metrics
from hopcast_content.domain.angles import AngleChoice, choose_angle
from hopcast_content.domain.brands import ScheduleSettings
from hopcast_content.domain.drafting import BrandVoice, Draft, DraftRequest, finalise
from hopcast_content.domain.duplicates import DraftToCheck, band
from hopcast_content.domain.embedding import Embedding, EmbeddingError, content_hash
from hopcast_content.domain.materials import Material, embedding_text, run_rng
from hopcast_content.domain.media_needs import PlatformsFor, platforms_for
from hopcast_content.domain.platform_texts import texts_for
from hopcast_content.domain.selection import Candidate, order_candidates, pillar_named
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.run_batch import RunBatch
from hopcast_shared.contract import (
    LeftOutPlatform,
    MaterialStrategy,
    MediaItem,
    PendingPostCreated,
    Platform,
    ScheduleDue,
    SkipReason,
)
from hopcast_shared.db import Conn
from hopcast_shared.handling import EventContext
from hopcast_shared.topics import CONTENT

log = logging.getLogger(__name__)


class EmbedderUnavailable(ConnectionError):
    """A remote embedder failed while drafting: the infrastructure's fault, not the event's.
    The consumer retries and then leaves the message for Kafka to deliver again (never the
    DLQ, which would leave the run without an end)."""


@dataclass(frozen=True)
class RunPlan:
    """How a run drafts: its candidates in order (those whose media suit some of its
    platforms, at most max_candidates), the angle, the brand's voice and the schedule."""

    candidates: list[Candidate]
    choice: AngleChoice
    voice: BrandVoice
    platforms: tuple[Platform, ...]
    schedule: ScheduleSettings

    def request(self, material: Material) -> tuple[PlatformsFor, DraftRequest]:
        split = platforms_for(self.platforms, material.text.media)
        return split, DraftRequest(material.text, self.voice, split.included, self.choice.angle, self.choice.reason)


def plan_run(deps: ContentDeps, org: uuid.UUID, data: ScheduleDue, batch: RunBatch) -> RunPlan | SkipReason:
    """The run's plan as the batch stands (what its earlier runs took), or why it drafts nothing."""
    if org in batch.deleted_organizations:
        return SkipReason.ORGANIZATION_INACTIVE
    brand = batch.brands.get(data.brand_profile_id)
    if brand is None or not brand.active_for(org):
        return SkipReason.BRAND_INACTIVE
    candidates = batch.selectable(data.brand_profile_id)
    if not candidates:
        return SkipReason.NO_READY_MATERIAL

    schedule = batch.schedule(data.schedule_id, org)
    targets = brand.pillar_targets()
    recent: dict[str, int] = {}
    if schedule.strategy is MaterialStrategy.PILLAR_BALANCED:
        for pillar, n in batch.recent_pillars[data.brand_profile_id].items():
            key = pillar_named(pillar, targets)
            recent[key] = recent.get(key, 0) + n
    rng = run_rng(data.run_id)
    ordered = order_candidates(
        schedule.strategy, candidates, rng, targets=targets, recent_pillars=recent, target_pillar=data.target_pillar
    )
    choice = choose_angle(batch.angle_stats[data.brand_profile_id], rng)
    platforms = tuple(Platform(p) for p in data.platforms)
    # A candidate none of whose platforms its media suit is passed over before it is even read
    # (nor does it count as a try): nothing of it could go out.
    suited = [c for c in ordered if platforms_for(platforms, c.media).included]
    if not suited:
        return SkipReason.ALL_PLATFORMS_LEFT_OUT
    return RunPlan(suited[: deps.settings.max_candidates], choice, brand.voice(), platforms, schedule)


async def draft_ahead(
    deps: ContentDeps, conn: Conn, items: Sequence[tuple[EventContext, ScheduleDue]], batch: RunBatch
) -> None:
    """Each run's first draft, written before the runs are handled, as if every earlier run
    of the batch drafted its own first candidate: their materials read in one statement and
    their texts embedded in one call (the embedder's cost per text falls with the batch). A
    run whose first draft proves too similar, or whose plan an earlier run changed, drafts
    and embeds the rest as before; nothing here decides anything."""
    firsts: list[tuple[uuid.UUID, ScheduleDue, RunPlan]] = []
    with batch.supposing():
        for ctx, data in items:
            plan = plan_run(deps, ctx.envelope.organizationid, data, batch)
            if isinstance(plan, RunPlan):
                first = plan.candidates[0]
                batch.taken(data.brand_profile_id, first.material_id, first.content_pillar)
                firsts.append((ctx.envelope.organizationid, data, plan))
    keys = {(plan.candidates[0].material_id, org) for org, _, plan in firsts}
    batch.materials.update(await deps.materials(conn).to_draft(keys))
    texts = []
    for _, data, plan in firsts:
        if (material := batch.materials.get(plan.candidates[0].material_id)) is not None:
            texts.append((await written(deps, batch, data.run_id, plan.request(material)[1])).content)
    await embedded(deps, batch, texts)


async def written(deps: ContentDeps, batch: RunBatch, run_id: uuid.UUID, request: DraftRequest) -> Draft:
    """The run's draft for the request, written once (ahead, or when the run reaches it). A
    draft is the run's own: another run asking the same gets its own writing, as one by one
    (an LLM writes a new one; a draft found too similar is not handed on)."""
    if (draft := batch.drafts.get((run_id, request))) is None:
        draft = batch.drafts[run_id, request] = finalise(await deps.generator.draft(request), request)
    return draft


async def embedded(deps: ContentDeps, batch: RunBatch, texts: Sequence[str]) -> None:
    """Embed the texts the batch has no vector for yet, in one call."""
    missing = list(dict.fromkeys(t for t in texts if t not in batch.vectors))
    if not missing:
        return
    try:
        vectors = await deps.embedder.embed(missing)
    except EmbeddingError as exc:
        raise EmbedderUnavailable(f"embedding the drafts failed: {exc}") from exc
    batch.vectors.update(zip(missing, vectors, strict=True))


async def draft_run(deps: ContentDeps, ctx: EventContext, data: ScheduleDue, batch: RunBatch) -> SkipReason | None:
    """Draft the run's post (and emit it); returns why not when it cannot."""
    conn, org, settings = ctx.conn, ctx.envelope.organizationid, deps.settings
    plan = plan_run(deps, org, data, batch)
    if isinstance(plan, SkipReason):
        return plan
    duplicates, schedule, choice = deps.duplicates(conn), plan.schedule, plan.choice
    for candidate in plan.candidates:
        if (material := batch.materials.get(candidate.material_id)) is None:
            batch.materials.update(await deps.materials(conn).to_draft([(candidate.material_id, org)]))
            material = batch.materials[candidate.material_id]
        assert material.organization_id == org  # read with the run's organization, ahead or here
        split, request = plan.request(material)  # as the candidate's: the same row
        draft = await written(deps, batch, data.run_id, request)
        await embedded(deps, batch, [draft.content])
        vector = batch.vectors[draft.content]
        material_hash = content_hash(embedding_text(material.text))
        # The media are part of the post: one caption over two pictures is two posts.
        draft_hash = content_hash("\n".join([draft.content, *draft.media_urls]))
        # The check must see the drafts the batch's earlier runs made in this organization.
        await batch.write_drafts(org)
        checked = time.perf_counter()
        draft_check = DraftToCheck(material.id, vector, draft_hash, material_hash, material.embedding)
        verdict = await duplicates.check(org, batch.since, draft_check, settings)
        metrics.DEDUP_SECONDS.observe(time.perf_counter() - checked)
        metrics.SIMILARITY.labels(band(verdict.draft_similarity, settings.similarity_threshold).value).inc()
        if verdict.too_similar(settings.similarity_threshold):
            log.info(
                "run %s: material %s too similar (draft %.3f, material %.3f, exact copy %s); next candidate",
                data.run_id,
                material.id,
                verdict.draft_similarity,
                verdict.material_similarity,
                verdict.exact_copy,
            )
            continue

        pending_post_id = uuid.uuid4()
        texts = texts_for(draft, split.included)
        left_out = [{"platform": p.value, "reason": why.value} for p, why in split.left_out]
        batch.drafted(
            {
                "id": pending_post_id,
                "run_id": data.run_id,
                "organization_id": org,
                "brand_profile_id": data.brand_profile_id,
                "schedule_id": data.schedule_id,
                "material_id": material.id,
                "content_pillar": material.text.content_pillar,
                "content": draft.content,
                "hashtags": list(draft.hashtags),
                "media_urls": list(draft.media_urls),
                "media": [m.as_json() for m in draft.media],
                "platforms_left_out": left_out,
                "platforms": [p.value for p in split.included],
                "angle": choice.angle.value,
                "angle_reason": choice.reason,
                "max_similarity": verdict.draft_similarity,
                "requires_approval": schedule.manual,
                "due_at": data.due_at,
                "texts": {p.value: text for p, text in texts.items()},
            },
            Embedding(
                organization_id=org,
                brand_profile_id=data.brand_profile_id,
                kind="PENDING_POST",
                source_id=pending_post_id,
                material_id=material.id,
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
                material_id=material.id,
                due_at=data.due_at,
                content=draft.content,
                texts=texts,
                hashtags=list(draft.hashtags),
                media=[MediaItem(url=m.url, alt_text=m.alt_text, mime_type=m.mime_type) for m in draft.media],
                platforms=list(split.included),
                platforms_left_out=[LeftOutPlatform(platform=p, reason=why) for p, why in split.left_out],
                angle=choice.angle,
                angle_reason=choice.reason,
                max_similarity=round(verdict.draft_similarity, 6),
                requires_approval=schedule.manual,
                approval_deadline=_approval_deadline(schedule, settings.approval_minute_s),
                deadline=data.deadline,
            ),
            correlation_id=str(data.run_id),
            topics=[CONTENT],
        )
        batch.results[data.run_id] = "DRAFTED"
        metrics.RUNS.labels("DRAFTED").inc()
        return None
    return SkipReason.ALL_CANDIDATES_DUPLICATE


def _approval_deadline(schedule: ScheduleSettings, minute_s: float) -> datetime | None:
    """Manual mode: the draft waits for a decision for the schedule's approval TTL from now
    (when it is drafted: a reviewer never loses time to a stage before it)."""
    if not schedule.manual:
        return None
    return datetime.now(UTC) + timedelta(seconds=schedule.approval_ttl_minutes * minute_s)
