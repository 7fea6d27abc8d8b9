"""The check of a reviewer's edit: upstream's PendingPostApproved with `texts` is checked like a
draft (each platform's rule, `domain/edits.py`; then the near-duplicate check within the
organization, against its drafts and posts of the window but this draft itself), and answered
on content.events: PendingPostEditAccepted, which the publisher takes as the approval with
these texts, or PendingPostEditRefused with the reason, and the draft stays waiting.

A plain approval (no texts) is the publisher's alone: content ignores it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from hopcast_content import metrics
from hopcast_content.adapters.dedup import nearest
from hopcast_content.domain.edits import EditRefusal, rule_refusal
from hopcast_content.domain.embedding import EmbeddingError
from hopcast_content.service_layer.deps import ContentDeps
from hopcast_content.service_layer.drafting import EmbedderUnavailable
from hopcast_content.service_layer.tenancy import refuse_if_another_organizations
from hopcast_shared.contract import (
    EditRefusalReason,
    PendingPostApproved,
    PendingPostEditAccepted,
    PendingPostEditRefused,
)
from hopcast_shared.handling import EventContext, PermanentError
from hopcast_shared.topics import CONTENT

log = logging.getLogger(__name__)


async def edit_submitted(deps: ContentDeps, ctx: EventContext, data: PendingPostApproved) -> None:
    if not data.texts:
        return
    org, conn = ctx.envelope.organizationid, ctx.conn
    runs = deps.runs(conn)
    drafted = await runs.drafted_post(org, data.pending_post_id)
    if drafted is None:
        await refuse_if_another_organizations(runs, ctx, "pending post", data.pending_post_id)
        raise PermanentError(f"unknown pending post {data.pending_post_id} for this organization")
    run_id, platforms = drafted
    refusal = rule_refusal(data.texts, platforms)
    similarity = 0.0
    if refusal is None:
        similarity = await _max_similarity(deps, ctx, data)
        if similarity > deps.settings.similarity_threshold:
            refusal = EditRefusal(
                EditRefusalReason.NEAR_DUPLICATE,
                None,
                f"too similar to a post of the organization in the last {deps.settings.dedup_window_days} days"
                f" (cosine similarity {similarity:.3f} > {deps.settings.similarity_threshold})",
            )
    if refusal is not None:
        log.info("pending post %s: edit refused, %s", data.pending_post_id, refusal.reason.value)
        metrics.EDITS.labels(refusal.reason.value).inc()
        await ctx.emit(
            PendingPostEditRefused(
                pending_post_id=data.pending_post_id,
                run_id=run_id,
                approval_id=ctx.envelope.id,
                platform=refusal.platform,
                reason=refusal.reason,
                detail=refusal.detail,
            ),
            correlation_id=str(run_id),
            topics=[CONTENT],
        )
        return
    metrics.EDITS.labels("ACCEPTED").inc()
    await ctx.emit(
        PendingPostEditAccepted(
            pending_post_id=data.pending_post_id,
            run_id=run_id,
            approval_id=ctx.envelope.id,
            texts=data.texts,
            max_similarity=round(max(-1.0, min(1.0, similarity)), 6),
        ),
        correlation_id=str(run_id),
        topics=[CONTENT],
    )


async def _max_similarity(deps: ContentDeps, ctx: EventContext, data: PendingPostApproved) -> float:
    """The highest cosine similarity of any edited text to the organization's drafts and posts
    of the window, this draft's own embedding left out (an edit is meant to be close to it)."""
    texts = sorted(set(data.texts.values()))
    try:
        vectors = await deps.embedder.embed(texts)
    except EmbeddingError as exc:
        raise EmbedderUnavailable(f"embedding the edit failed: {exc}") from exc
    since = datetime.now(UTC) - timedelta(days=deps.settings.dedup_window_days)
    best = 0.0
    for vector in vectors:
        found = await nearest(
            ctx.conn,
            ctx.envelope.organizationid,
            since,
            vector,
            k=2,
            exact_max_rows=deps.settings.dedup_exact_max_rows,
            ef_search=deps.settings.hnsw_ef_search,
            max_scan_tuples=deps.settings.hnsw_max_scan_tuples,
        )
        others = [n.similarity for n in found if n.source_id != data.pending_post_id]
        best = max([best, *others])
    return best
