"""The publishing decisions of the service layer: start publishing a pending post and complete
it (giving up on one is `giving_up.py`; the loop that calls the platforms in between is
`entrypoints/publishing_loop.py`).

Three steps, each safe to crash after:

1. `start_publishing`, in the transaction of the input that completed the pending post
   (the consumer's transaction, with its inbox row): choose the account for each platform,
   write one `publish_attempts` row per platform with its idempotency key (or its failure,
   NO_ACCOUNT_FOR_PLATFORM), and move the pending post to PUBLISHING. When nothing needs a
   platform call (no usable account anywhere, an inactive organization or brand) it is
   completed right there, in the same transaction. The status change wakes the publishing
   loop at commit (see `entrypoints/publishing_loop.py`).
2. The publishing loop (`PublishingLoop`) leases PUBLISHING pending posts (FOR UPDATE
   SKIP LOCKED, a lease of PUBLISHER_LEASE_S, renewed while their calls wait), opens the
   tokens, and calls the adapters, every platform of a post concurrently; each call carries
   the attempt's idempotency key and fixed creation time, and is sent only once the post's
   lease is confirmed to outlast it. No transaction is open meanwhile.
3. `complete`, one transaction for a batch: mark each pending post PUBLISHED,
   PARTIALLY_PUBLISHED or PUBLISH_FAILED - only if it is still PUBLISHING under this
   worker's lease - and, for those marked, write the posts rows and the outbox rows of
   PostPublished (publisher.events and analytics.events) or PostPublishFailed per platform,
   and the run's one ScheduleRunCompleted. Everything a pending post writes is made and
   validated first (`prepare_completion`): one that cannot be completed (its events break the
   contract, the database refuses its rows - then the batch is written one by one to find
   it) is left out, so it never holds up the others, and tried again alone with backoff
   (`giving_up.py`; `completion_backoff_s`, doubling); after `completion_max_attempts` it
   ends PUBLISH_FAILED with PostPublishFailed RETRIES_EXHAUSTED per platform and its
   ScheduleRunCompleted, logged and counted (hopcast_publisher_completion_failures_total).

A crash between 1 and 3 leaves the pending post PUBLISHING; when its lease runs out, a
loop (this replica after a restart, or another) claims it again, and since it was claimed
before, each adapter first asks the platform whether the post already exists (Bluesky: the
record key derived from the idempotency key; Mastodon: the Idempotency-Key header; X and
LinkedIn: the account's latest posts with the same text, or OUTCOME_UNKNOWN where LinkedIn
will not list them; sandbox: ids derived from the key) before posting, wherever a call may
have been sent (an attempt is recorded SENT before its first call: `adapters/leases.py`;
one still QUEUED is posted without asking). No call is sent
unless its post's lease outlasts it (the loop's `LeaseKeeper`), so two workers never
publish the same post at once; a worker that finds its lease gone at step 3 writes nothing
(the row's status or lease token no longer match), and posts' UNIQUE (pending_post_id,
platform) backs that up.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from hopcast_publisher import metrics
from hopcast_publisher.adapters.platforms.base import Published
from hopcast_publisher.domain.accounts import pick_accounts
from hopcast_publisher.domain.deferral import Deferral
from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.pending import Status
from hopcast_publisher.domain.posts import idempotency_key, post_id_for
from hopcast_publisher.domain.publishing import PublishingPost
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_shared import outbox
from hopcast_shared.contract import (
    Angle,
    MediaItem,
    Platform,
    PostPublished,
    PostPublishFailed,
    PublishFailureReason,
    RunOutcome,
    ScheduleRunCompleted,
)
from hopcast_shared.contract.events import EventData
from hopcast_shared.db import Conn
from hopcast_shared.outbox import OutboxRow, write_outbox
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import extract_context, inject_headers, tracer

log = logging.getLogger(__name__)
SOURCE = "hopcast/publisher"

PENDING, QUEUED, PUBLISHED, FAILED = "PENDING", "QUEUED", "PUBLISHED", "FAILED"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PlatformResult:
    platform: str
    social_account_id: uuid.UUID | None
    published: Published | None = None
    reason: PublishFailureReason | None = None
    detail: str = ""
    deferred: Deferral | None = None
    """Put off until its platform's limit resets (neither published nor failed yet)."""
    recorded: bool = False
    """Settled and its event written at an earlier deferral of its pending post."""


@dataclass(frozen=True)
class Failed:
    """A pending post that could not be completed this round, and why."""

    pending: PublishingPost
    results: Sequence[PlatformResult]
    error: BaseException


# --- step 1 ------------------------------------------------------------------------------------


async def start_publishing(
    deps: PublisherDeps, conn: Conn, kafka: KafkaSettings, pending_posts: Sequence[PublishingPost]
) -> dict[uuid.UUID, Status]:
    """In the caller's transaction, for pending posts it has just moved to PUBLISHING (the
    status change wakes the publishing loop at commit: migration 0002's trigger): choose the
    account of each platform and record one attempt per platform with its idempotency key,
    for all of them in one statement; complete at once those with nothing to call a platform
    for (no usable account anywhere, an inactive organization or brand). Returns the status
    each one is left in."""
    if not pending_posts:
        return {}
    contexts = await deps.accounts.publishing_contexts(
        conn, [(p.organization_id, p.brand_profile_id) for p in pending_posts]
    )
    attempts: list[tuple[uuid.UUID, str, str, uuid.UUID | None, str, str | None, str | None]] = []
    at_once: list[tuple[PublishingPost, Sequence[PlatformResult], RunOutcome]] = []
    statuses: dict[uuid.UUID, Status] = {}
    for pending in pending_posts:
        org_active, brand_active, linked = contexts[(pending.organization_id, pending.brand_profile_id)]
        platforms: list[str] = list(pending.platforms)
        results: list[PlatformResult] = []
        calls = 0
        if not (org_active and brand_active):
            detail = "the organization is deleted" if not org_active else "the brand is deleted"
            for platform in platforms:
                results.append(
                    PlatformResult(platform, None, None, PublishFailureReason.NO_ACCOUNT_FOR_PLATFORM, detail)
                )
        else:
            for platform, chosen in pick_accounts(linked, platforms).items():
                if chosen is None:
                    detail = f"the brand has no active {platform} account"
                    results.append(
                        PlatformResult(platform, None, None, PublishFailureReason.NO_ACCOUNT_FOR_PLATFORM, detail)
                    )
                else:
                    key = idempotency_key(pending.id, platform)
                    # QUEUED: written with its start, before any claim, so nothing was sent for it
                    # (`adapters/leases.py`); no second write of every attempt at its first claim.
                    attempts.append((pending.id, platform, key, chosen.social_account_id, QUEUED, None, None))
                    calls += 1
        for r in results:
            key = idempotency_key(pending.id, r.platform)
            reason = r.reason.value if r.reason else None
            attempts.append((pending.id, r.platform, key, None, FAILED, reason, r.detail))
        if calls:
            statuses[pending.id] = Status.PUBLISHING
        else:
            # Nothing to call a platform for: end it now, in this transaction.
            outcome = run_outcome([], organization_active=org_active, brand_active=brand_active)
            at_once.append((pending, results, outcome))
            statuses[pending.id] = Status(outcome.value)
    await deps.pending_posts.insert_attempts(conn, attempts)
    if at_once:
        await complete(deps, conn, kafka, at_once, lease_token=None)
    return statuses


# --- step 3 ------------------------------------------------------------------------------------


def _completion_events(
    pending: PublishingPost, results: Sequence[PlatformResult], outcome: RunOutcome
) -> tuple[list[dict[str, Any]], list[EventData]]:
    posts, events = platform_events(pending, [r for r in results if not r.recorded])
    events.append(
        ScheduleRunCompleted(
            run_id=pending.run_id,
            schedule_id=pending.schedule_id,
            brand_profile_id=pending.brand_profile_id,
            outcome=outcome,
            due_at=pending.due_at,
            completed_at=now_utc(),
        )
    )
    return posts, events


def platform_events(
    pending: PublishingPost, results: Sequence[PlatformResult]
) -> tuple[list[dict[str, Any]], list[EventData]]:
    """The posts rows and the PostPublished or PostPublishFailed of platforms' results."""
    posts: list[dict[str, Any]] = []
    events: list[EventData] = []
    for r in results:
        if r.published is not None and r.social_account_id is not None:
            post_id = post_id_for(pending.id, r.platform)
            post = {
                "id": post_id,
                "organization_id": pending.organization_id,
                "pending_post_id": pending.id,
                "run_id": pending.run_id,
                "schedule_id": pending.schedule_id,
                "brand_profile_id": pending.brand_profile_id,
                "material_id": pending.material_id,
                "social_account_id": r.social_account_id,
                "platform": r.platform,
                "angle": pending.angle,
                "content": pending.text_for(r.platform),
                "external_id": r.published.external_id,
                "external_url": r.published.external_url,
                "published_at": r.published.published_at,
                "media": [m.as_json() for m in pending.media],
                "hashtags": list(pending.hashtags or ()),
                "angle_reason": pending.angle_reason,
            }
            posts.append(post)
            events.append(
                PostPublished(
                    post_id=post_id,
                    pending_post_id=pending.id,
                    run_id=pending.run_id,
                    material_id=pending.material_id,
                    schedule_id=pending.schedule_id,
                    brand_profile_id=pending.brand_profile_id,
                    social_account_id=r.social_account_id,
                    platform=Platform(r.platform),
                    angle=Angle(pending.angle),
                    external_id=r.published.external_id,
                    external_url=r.published.external_url,
                    published_at=r.published.published_at,
                    hashtags=list(pending.hashtags or ()),
                    media=[MediaItem.model_validate(m.as_json()) for m in pending.media],
                    angle_reason=pending.angle_reason,
                )
            )
        else:
            events.append(
                PostPublishFailed(
                    pending_post_id=pending.id,
                    run_id=pending.run_id,
                    platform=Platform(r.platform),
                    reason=r.reason or PublishFailureReason.PLATFORM_REJECTED,
                    detail=r.detail[:2000],
                )
            )
    return posts, events


def _outbox_rows(
    kafka: KafkaSettings, pending: PublishingPost, events: Sequence[EventData], trace: Sequence[tuple[str, str]]
) -> list[OutboxRow]:
    """Outbox rows of events about a pending post: keyed by its organization, in its run's saga,
    caused by the input that started its publishing, carrying the trace context `trace`."""
    cause = pending.cause_event_id
    return outbox.event_rows(
        kafka,
        events,
        organization_id=pending.organization_id,
        source=SOURCE,
        correlation_id=str(pending.run_id),
        causation_id=str(cause) if cause else None,
        trace=trace,
    )


def pending_trace(pending: PublishingPost) -> otel_context.Context:
    """The trace the pending post's publishing belongs to: that of the input that started it
    (so a run stays one trace), an empty context when it has none."""
    stored = pending.trace_headers or []
    return extract_context((k, v.encode("latin-1")) for k, v in stored) if stored else otel_context.Context()


def span_headers(pending: PublishingPost, outcome: RunOutcome) -> list[tuple[str, str]]:
    """The trace context of the events of a pending post's completion: a "complete pending
    post" span in the post's trace (`pending_trace`), written by the kernel's propagation
    (`inject_headers`: W3C traceparent and tracestate; nothing when the span is not recording a
    valid context). The platform calls are CLIENT spans of their own (the publishing loop)."""
    span = tracer.start_span(
        "complete pending post",
        context=pending_trace(pending),
        kind=SpanKind.INTERNAL,
        attributes={"hopcast.pending_post_id": str(pending.id), "hopcast.outcome": outcome.value},
    )
    span.end()
    with trace.use_span(span):
        return inject_headers()


@dataclass(frozen=True)
class Completion:
    """What completing one pending post writes, made (and validated against the contract)
    before any of it is written: a post that cannot be completed is found here, alone."""

    pending: PublishingPost
    results: Sequence[PlatformResult]
    outcome: RunOutcome
    posts: list[dict[str, Any]]
    rows: list[OutboxRow]
    settled: list[tuple[uuid.UUID, str, str, str | None, str | None]]


def prepare_completion(
    kafka: KafkaSettings, pending: PublishingPost, results: Sequence[PlatformResult], outcome: RunOutcome
) -> Completion:
    """The posts, events and attempt results of one pending post; raises when its events
    break the contract (a platform's answer that is no URL, a corrupt row)."""
    posts, events = _completion_events(pending, results, outcome)
    rows = _outbox_rows(kafka, pending, events, span_headers(pending, outcome))
    settled = [
        (
            pending.id,
            r.platform,
            PUBLISHED if r.published else FAILED,
            None if r.published else (r.reason.value if r.reason else None),
            None if r.published else r.detail,
        )
        for r in results
    ]
    return Completion(pending, results, outcome, posts, rows, settled)


async def write_completions(
    deps: PublisherDeps, conn: Conn, completions: Sequence[Completion], *, lease_token: uuid.UUID | None
) -> list[Completion]:
    """In the caller's transaction: finish the pending posts still held under `lease_token`
    and write their posts, attempt results and events. Returns those finished."""
    finished = await deps.pending_posts.finish_pending_posts(
        conn, [(c.pending.id, c.outcome.value) for c in completions], lease_token=lease_token
    )
    done: list[Completion] = []
    for c in completions:
        if c.pending.id in finished:
            done.append(c)
        else:
            log.warning("pending post %s was taken over by another worker; its results are dropped", c.pending.id)
    await deps.posts.insert_posts(conn, [post for c in done for post in c.posts])
    await deps.pending_posts.settle_attempts(conn, [s for c in done for s in c.settled])
    await write_outbox(conn, [row for c in done for row in c.rows])
    return done


def count_completed(done: Sequence[Completion]) -> None:
    """The metrics of completed pending posts, counted per batch (a label lookup per post and
    platform would cost more than the rest of its bookkeeping)."""
    runs = Counter(c.outcome.value for c in done)
    results = Counter(
        (r.platform, "published" if r.published else (r.reason.value if r.reason else "failed"))
        for c in done
        for r in c.results
    )
    for outcome, n in runs.items():
        metrics.RUNS_COMPLETED.labels(outcome).inc(n)
    for (platform, result), n in results.items():
        metrics.PLATFORM_RESULTS.labels(platform, result).inc(n)
        if result == "published":
            metrics.POSTS_PUBLISHED.labels(platform).inc(n)


async def complete(
    deps: PublisherDeps,
    conn: Conn,
    kafka: KafkaSettings,
    batch: Sequence[tuple[PublishingPost, Sequence[PlatformResult], RunOutcome]],
    *,
    lease_token: uuid.UUID | None,
) -> int:
    """In the caller's transaction: finish the pending posts still held under `lease_token`
    and write their posts and events. Returns how many were finished."""
    done = await write_completions(
        deps, conn, [prepare_completion(kafka, p, r, o) for p, r, o in batch], lease_token=lease_token
    )
    count_completed(done)
    return len(done)
