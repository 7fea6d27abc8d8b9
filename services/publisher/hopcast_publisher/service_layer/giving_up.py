"""Giving up on a pending post that cannot be completed: a batch is completed without it, it is
retried alone with backoff, and after `completion_max_attempts` it ends PUBLISH_FAILED with
PostPublishFailed RETRIES_EXHAUSTED per platform and its run's ScheduleRunCompleted (or,
when not even that can be written, with the run's ScheduleRunCompleted alone, on which billing
refunds it, the error kept on its row; without events only when the row has no run to end). Also a pending
post whose organization or brand was deleted before any platform was called: none is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from hopcast_publisher import metrics
from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.publishing import PublishAttempt, PublishingPost
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.publishing import (
    FAILED,
    SOURCE,
    Completion,
    Failed,
    PlatformResult,
    count_completed,
    prepare_completion,
    write_completions,
)
from hopcast_shared.contract import PublishFailureReason, RunOutcome, ScheduleRunCompleted
from hopcast_shared.db import Database, is_infrastructure_error
from hopcast_shared.outbox import OutboxRow, event_rows, write_outbox
from hopcast_shared.redact import redact_text
from hopcast_shared.settings import KafkaSettings

log = logging.getLogger(__name__)


def stopped_before_publishing(
    pending: PublishingPost, attempts: Sequence[PublishAttempt]
) -> tuple[PublishingPost, list[PlatformResult], RunOutcome] | None:
    """Deleted after publishing started and before any platform was called: none is. (A
    resumed post may be on a platform already; it is finished and recorded.)"""
    org_active, brand_active = pending.org_active, pending.brand_active
    if pending.claims > 1 or (org_active and brand_active):
        return None
    detail = "the organization is deleted" if not org_active else "the brand is deleted"
    stopped = [
        PlatformResult(a.platform, None, None, PublishFailureReason.NO_ACCOUNT_FOR_PLATFORM, detail)
        if a.status != FAILED
        else PlatformResult(a.platform, None, None, PublishFailureReason(a.recorded_failure), a.failure_detail or "")
        for a in attempts
    ]
    return pending, stopped, run_outcome([], organization_active=org_active, brand_active=brand_active)


async def complete_batch(
    deps: PublisherDeps, db: Database, prepared: Sequence[Completion], lease: uuid.UUID
) -> list[Failed]:
    """One transaction for the batch; should the database refuse it, one each, so only the
    pending posts it refuses fail. Returns those."""
    if not prepared:
        return []
    try:
        async with db.transaction() as conn:
            done = await write_completions(deps, conn, prepared, lease_token=lease)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise  # not the posts' fault: the loop stops, the leases run out, they are resumed
        if len(prepared) == 1:
            return [Failed(prepared[0].pending, prepared[0].results, exc)]
        log.warning(
            "completing a batch of %d pending posts failed (%s); completing them one by one",
            len(prepared),
            describe_failure(exc),
        )
    else:
        count_completed(done)
        return []
    failed: list[Failed] = []
    for completion in prepared:
        try:
            async with db.transaction() as conn:
                done = await write_completions(deps, conn, [completion], lease_token=lease)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            failed.append(Failed(completion.pending, completion.results, exc))
        else:
            count_completed(done)
    return failed


async def completion_failed(
    deps: PublisherDeps, db: Database, kafka: KafkaSettings, failure: Failed, lease: uuid.UUID
) -> None:
    """Retry a pending post that could not be completed later, alone, with backoff; after
    `completion_max_attempts` tries, end it PUBLISH_FAILED: PostPublishFailed
    RETRIES_EXHAUSTED per platform and its run's one ScheduleRunCompleted."""
    pending = failure.pending
    attempts = pending.completion_failures + 1
    error = describe_failure(failure.error)
    settings = deps.settings
    if attempts < settings.completion_max_attempts:
        delay = min(settings.completion_backoff_s * 2 ** (attempts - 1), settings.completion_backoff_max_s)
        async with db.transaction() as conn:
            held = await deps.pending_posts.defer_completion(
                conn, pending.id, lease_token=lease, failures=attempts, error=error, retry_in_s=delay
            )
        log.warning(
            "pending post %s could not be completed (attempt %d of %d, next in %.1f s): %s",
            pending.id,
            attempts,
            settings.completion_max_attempts,
            delay,
            error,
            exc_info=failure.error,
        )
        if held:
            metrics.COMPLETION_FAILURES.labels("retried").inc()
        return
    log.error(
        "pending post %s could not be completed after %d attempts; ending it PUBLISH_FAILED: %s",
        pending.id,
        attempts,
        error,
        exc_info=failure.error,
    )
    try:
        ending = prepare_completion(
            kafka, pending, given_up(pending, failure.results, attempts, error), RunOutcome.PUBLISH_FAILED
        )
        async with db.transaction() as conn:
            done = await write_completions(deps, conn, [ending], lease_token=lease)
            await deps.pending_posts.record_completion_error(conn, pending.id, failures=attempts, error=error)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        # Not even its failure can be written as events (a corrupt row): end it without
        # them, loudly; the error stays on the row (GET /pending-posts/{id}).
        both = f"{error}; ending it failed too: {describe_failure(exc)}"
        ending_rows = run_end_alone(kafka, pending)
        async with db.transaction() as conn:
            held = await deps.pending_posts.abandon_pending_post(
                conn, pending.id, lease_token=lease, failures=attempts, error=both
            )
            if held and ending_rows:
                await write_outbox(conn, ending_rows)
        said = "with its run's outcome alone" if ending_rows else "without events"
        log.error("pending post %s ended PUBLISH_FAILED %s: %s", pending.id, said, both, exc_info=exc)
        if held:
            metrics.COMPLETION_FAILURES.labels("abandoned").inc()
            if ending_rows:
                metrics.RUNS_COMPLETED.labels(RunOutcome.PUBLISH_FAILED.value).inc()
        return
    count_completed(done)
    if done:
        metrics.COMPLETION_FAILURES.labels("given_up").inc()


def run_end_alone(kafka: KafkaSettings, pending: PublishingPost) -> list[OutboxRow]:
    """The last resort's events: the run's one ScheduleRunCompleted PUBLISH_FAILED, alone, on
    which billing refunds every platform's share not refunded yet (the per-platform failures
    could not be written). None when the row cannot make even that (no run to end)."""
    try:
        ending = ScheduleRunCompleted(
            run_id=pending.run_id,
            schedule_id=pending.schedule_id,
            brand_profile_id=pending.brand_profile_id,
            outcome=RunOutcome.PUBLISH_FAILED,
            due_at=pending.due_at,
            completed_at=datetime.now(UTC),
        )
        return event_rows(
            kafka,
            [ending],
            organization_id=pending.organization_id,
            source=SOURCE,
            correlation_id=str(pending.run_id),
            causation_id=str(pending.cause_event_id) if pending.cause_event_id else None,
            trace=[],
        )
    except Exception:
        log.exception("pending post %s cannot even end its run", pending.id)
        return []


def given_up(
    pending: PublishingPost, results: Sequence[PlatformResult], attempts: int, error: str
) -> list[PlatformResult]:
    """Every platform of a pending post that could not be completed fails RETRIES_EXHAUSTED
    (so billing refunds it and the run ends), saying what went wrong and, where the platform
    took the post, that it may be live there."""
    platforms = [r.platform for r in results] or list(pending.platforms or [])
    by_platform = {r.platform: r for r in results}
    failed = []
    for platform in platforms:
        r = by_platform.get(platform)
        if r is not None and r.recorded:
            failed.append(r)  # settled, its event written, at a deferral of the post: as it was
            continue
        detail = f"the publisher could not complete this post after {attempts} attempts: {error}"
        if r is not None and r.published is not None:
            live = _printable(r.published.external_id[:200])
            detail = f"published on {platform} as {live} but not recorded; " + detail
        account = r.social_account_id if r is not None else None
        failed.append(PlatformResult(platform, account, None, PublishFailureReason.RETRIES_EXHAUSTED, detail))
    return failed


def describe_failure(exc: BaseException) -> str:
    """What went wrong, for logs, the row and PostPublishFailed's detail: never the input
    values (pydantic's text repeats them), secrets masked."""
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _printable(redact_text(f"{exc.title} invalid: {text}"))[:1000]
    return _printable(redact_text(f"{type(exc).__name__}: {exc}"))[:1000]


def _printable(text: str) -> str:
    # What failed may be a control character (a NUL the database refuses): never repeat it.
    return "".join(c if c.isprintable() else "?" for c in text)
