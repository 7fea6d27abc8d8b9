"""One run's draft: order the brand's selectable materials by the schedule's strategy, pick an
angle, and draft from each candidate in turn until a draft is not too similar to what the
organization drafted or published in the window; then emit PendingPostCreated. A candidate
whose media suit none of the run's platforms is passed over (Instagram alone and a text); one
that suits some goes to those, the others left out with why, before anything is debited."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from hopcast_content import metrics
from hopcast_content.domain.angles import choose_angle
from hopcast_content.domain.brands import ScheduleSettings
from hopcast_content.domain.drafting import DraftRequest, finalise
from hopcast_content.domain.duplicates import DraftToCheck, band
from hopcast_content.domain.embedding import Embedding, EmbeddingError, content_hash
from hopcast_content.domain.materials import embedding_text, run_rng
from hopcast_content.domain.media_needs import platforms_for
from hopcast_content.domain.platform_texts import texts_for
from hopcast_content.domain.selection import order_candidates, pillar_named
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
from hopcast_shared.handling import EventContext
from hopcast_shared.topics import CONTENT

log = logging.getLogger(__name__)


class EmbedderUnavailable(ConnectionError):
    """A remote embedder failed while drafting: the infrastructure's fault, not the event's.
    The consumer retries and then leaves the message for Kafka to deliver again (never the
    DLQ, which would leave the run without an end)."""


async def draft_run(deps: ContentDeps, ctx: EventContext, data: ScheduleDue, batch: RunBatch) -> SkipReason | None:
    """Draft the run's post (and emit it); returns why not when it cannot."""
    conn, org, settings = ctx.conn, ctx.envelope.organizationid, deps.settings
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
    voice = brand.voice()
    platforms = tuple(Platform(p) for p in data.platforms)
    materials, duplicates = deps.materials(conn), deps.duplicates(conn)

    # A candidate none of whose platforms its media suit is passed over before it is even read
    # (nor does it count as a try): nothing of it could go out.
    suited = [c for c in ordered if platforms_for(platforms, c.media).included]
    for candidate in suited[: settings.max_candidates]:
        material = await materials.to_draft(candidate.material_id, org)
        assert material is not None
        split = platforms_for(platforms, material.text.media)  # as the candidate's: the same row
        request = DraftRequest(material.text, voice, split.included, choice.angle, choice.reason)
        draft = finalise(await deps.generator.draft(request), request)
        try:
            [vector] = await deps.embedder.embed([draft.content])
        except EmbeddingError as exc:
            raise EmbedderUnavailable(f"embedding the draft failed: {exc}") from exc
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
    return SkipReason.ALL_CANDIDATES_DUPLICATE if suited else SkipReason.ALL_PLATFORMS_LEFT_OUT


def _approval_deadline(schedule: ScheduleSettings, minute_s: float) -> datetime | None:
    """Manual mode: the draft waits for a decision for the schedule's approval TTL from now
    (when it is drafted: a reviewer never loses time to a stage before it)."""
    if not schedule.manual:
        return None
    return datetime.now(UTC) + timedelta(seconds=schedule.approval_ttl_minutes * minute_s)
