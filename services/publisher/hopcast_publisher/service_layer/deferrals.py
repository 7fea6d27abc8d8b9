"""Deferral on rate limits, between the platform calls and the completion of a round (step 2
of `service_layer/publishing.py`), and the per-account limits every replica shares.

Before the calls, `reserve` reserves each account's turns and reads the blocks other replicas
learned (`adapters/account_limits.py`: one statement for the round) and hands them to the
adapters' limiter. After the calls, `record` takes the pending posts with a platform put off
(`PublishDeferred`): one put off past the longest deferral (PUBLISHER_MAX_DEFERRAL_S after its
first try) fails RETRIES_EXHAUSTED there and is completed (so refunded) as usual; the others
are recorded in one transaction, only while this worker still holds them: the deferred
attempts' retry_at, the other platforms' results settled with their PostPublished or
PostPublishFailed (so the retry neither calls them again nor repeats the event), a
PostPublishDeferred per platform put off, the post's lease pushed to its earliest retry_at
(when the publishing loop claims it again, resumed: each adapter first asks whether the post
exists), and the blocks learned from the platforms for the other replicas.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from hopcast_publisher import metrics
from hopcast_publisher.adapters.platforms.base import AccountRateLimiter, PlatformAdapter, Published
from hopcast_publisher.adapters.platforms.http import HttpPlatformAdapter
from hopcast_publisher.adapters.platforms.rate_limits import PublishDeferred, RateLimit
from hopcast_publisher.domain.accounts import SocialAccount
from hopcast_publisher.domain.deferral import Deferral, past_max_detail, within_max_deferral
from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.publishing import PublishAttempt, PublishingPost
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.publishing import (
    FAILED,
    PUBLISHED,
    Failed,
    PlatformResult,
    _outbox_rows,
    platform_events,
)
from hopcast_shared.contract import Platform, PostPublishDeferred, PublishFailureReason, RunOutcome
from hopcast_shared.db import Conn, Database, is_infrastructure_error
from hopcast_shared.outbox import OutboxRow, write_outbox
from hopcast_shared.settings import KafkaSettings

log = logging.getLogger(__name__)

Outcome = tuple[PublishingPost, list[PlatformResult], RunOutcome]


def deferred_result(platform: str, account_id: uuid.UUID, deferred: PublishDeferred) -> PlatformResult:
    """An adapter's PublishDeferred as the platform's result of the round."""
    return PlatformResult(
        platform,
        account_id,
        None,
        deferred=Deferral(deferred.retry_at, deferred.reason, deferred.detail, deferred.maybe_sent),
    )


def settled_result(attempt: PublishAttempt) -> PlatformResult | None:
    """The result of an attempt settled at an earlier deferral of its pending post (its event
    is written: it is neither called nor told again), else None."""
    if attempt.settled_at is None:
        return None
    if attempt.status == PUBLISHED and attempt.external_id and attempt.external_url and attempt.published_at:
        published = Published(attempt.external_id, attempt.external_url, attempt.published_at)
        return PlatformResult(attempt.platform, attempt.social_account_id, published, recorded=True)
    reason = PublishFailureReason(attempt.failure_reason or PublishFailureReason.RETRIES_EXHAUSTED.value)
    return PlatformResult(
        attempt.platform, attempt.social_account_id, None, reason, attempt.failure_detail or "", recorded=True
    )


class SharedLimits:
    """The per-account limits of the adapters that have them (the HTTP ones), shared with the
    other replicas through the database, and the recording of deferrals."""

    def __init__(
        self, deps: PublisherDeps, db: Database, kafka: KafkaSettings, adapters: Mapping[str, PlatformAdapter]
    ):
        self._deps = deps
        self._db = db
        self._kafka = kafka
        self._limiters = {
            platform: adapter.limiter
            for platform, adapter in adapters.items()
            if isinstance(adapter, HttpPlatformAdapter)
        }

    async def reserve(self, attempts: Sequence[PublishAttempt], accounts: Mapping[uuid.UUID, SocialAccount]) -> None:
        """Reserve the turns of the round's calls per account and learn the blocks the other
        replicas recorded: one statement, none when no call goes to a limited platform."""
        calls: dict[uuid.UUID, int] = {}
        limiter_of: dict[uuid.UUID, AccountRateLimiter] = {}
        for a in attempts:
            limiter = self._limiters.get(a.platform)
            account_id = a.social_account_id
            # Not ended yet: PENDING, or QUEUED / SENT while leased (`adapters/leases.py`).
            if limiter is None or a.status in (PUBLISHED, FAILED) or account_id is None or account_id not in accounts:
                continue
            calls[account_id] = calls.get(account_id, 0) + 1
            limiter_of[account_id] = limiter
        if not calls:
            return
        interval = max(limiter.min_interval_s for limiter in limiter_of.values())
        async with self._db.transaction() as conn:
            turns = await self._deps.account_limits.reserve_turns(conn, calls, min_interval_s=interval)
        for account_id, turn in turns.items():
            limiter = limiter_of[account_id]
            limiter.turn_in(account_id, turn.first_turn_in_s)
            if turn.block is not None:
                limiter.block(account_id, turn.block, learned=False)

    async def record(
        self,
        outcomes: Sequence[Outcome | Failed],
        attempts: Mapping[uuid.UUID, Sequence[PublishAttempt]],
        lease: uuid.UUID,
    ) -> list[Outcome | Failed]:
        """Record the round's deferrals and learned blocks; returns the outcomes left to
        complete (a post whose deferrals all went past the longest one among them, failed)."""
        to_complete: list[Outcome | Failed] = []
        deferred: list[tuple[PublishingPost, list[PlatformResult]]] = []
        for outcome in outcomes:
            if isinstance(outcome, Failed) or not any(r.deferred for r in outcome[1]):
                to_complete.append(outcome)
                continue
            pending, results, _ = outcome
            results = self._past_max_failed(results, attempts.get(pending.id, []))
            if any(r.deferred for r in results):
                deferred.append((pending, results))
            else:
                to_complete.append((pending, results, run_outcome([r.published is not None for r in results])))
        prepared: list[_Deferred] = []
        for pending, results in deferred:
            try:
                prepared.append(self._prepare(pending, results))
            except Exception as exc:  # its events break the contract: retried alone, as a completion
                to_complete.append(Failed(pending, results, exc))
        learned: dict[uuid.UUID, RateLimit] = {}
        for limiter in {id(x): x for x in self._limiters.values()}.values():
            for account_id, limit in limiter.take_learned().items():
                learned[account_id] = max(limit, learned.get(account_id, limit))
        to_complete += await self._write_all(prepared, learned, lease)
        return to_complete

    async def _write_all(
        self, prepared: Sequence[_Deferred], learned: Mapping[uuid.UUID, RateLimit], lease: uuid.UUID
    ) -> list[Failed]:
        """One transaction for the round; should the database refuse it, one per pending post,
        so only those it refuses fail (as `giving_up.complete_batch` does). Returns those."""
        if not prepared and not learned:
            return []
        try:
            async with self._db.transaction() as conn:
                await self._deps.account_limits.block(conn, learned)
                await self._write(conn, prepared, lease)
            return []
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            if len(prepared) <= 1:
                return [Failed(d.pending, d.results, exc) for d in prepared]
        failed: list[Failed] = []
        for d in prepared:
            try:
                async with self._db.transaction() as conn:
                    await self._write(conn, [d], lease)
            except Exception as exc:
                if is_infrastructure_error(exc):
                    raise
                failed.append(Failed(d.pending, d.results, exc))
        return failed

    def _past_max_failed(
        self, results: list[PlatformResult], attempts: Sequence[PublishAttempt]
    ) -> list[PlatformResult]:
        max_s = self._deps.settings.max_deferral_s
        first_tried = {a.platform: a.created_at for a in attempts}
        kept: list[PlatformResult] = []
        for r in results:
            d = r.deferred
            if (
                d is not None
                and r.platform in first_tried
                and not within_max_deferral(first_tried[r.platform], d.retry_at, max_s)
            ):
                r = replace(
                    r, deferred=None, reason=PublishFailureReason.RETRIES_EXHAUSTED, detail=past_max_detail(d, max_s)
                )
            kept.append(r)
        return kept

    def _prepare(self, pending: PublishingPost, results: list[PlatformResult]) -> _Deferred:
        """What recording a pending post's deferral writes, made (and validated against the
        contract) before any of it is written."""
        fresh = [r for r in results if not r.recorded and r.deferred is None]
        posts, events = platform_events(pending, fresh)
        waiting = []
        for r in results:
            if r.deferred is not None:
                waiting.append(
                    (pending.id, r.platform, r.deferred.retry_at, r.deferred.reason.value, r.deferred.maybe_sent)
                )
                events.append(
                    PostPublishDeferred(
                        pending_post_id=pending.id,
                        run_id=pending.run_id,
                        platform=Platform(r.platform),
                        retry_at=r.deferred.retry_at,
                        reason=r.deferred.reason,
                    )
                )
        trace = [(h[0], h[1]) for h in pending.trace_headers or []]
        return _Deferred(
            pending,
            results,
            retry_at=min(w[2] for w in waiting),
            posts=posts,
            waiting=waiting,
            settled=[_settled_row(pending.id, r) for r in fresh],
            rows=_outbox_rows(self._kafka, pending, events, trace),
        )

    async def _write(self, conn: Conn, prepared: Sequence[_Deferred], lease: uuid.UUID) -> None:
        if not prepared:
            return
        held = await self._deps.deferrals.defer_publishing(
            conn, {d.pending.id: d.retry_at for d in prepared}, lease_token=lease
        )
        mine = [d for d in prepared if d.pending.id in held]
        for d in prepared:
            if d.pending.id not in held:
                log.warning("pending post %s was taken over by another worker; its deferral is dropped", d.pending.id)
        await self._deps.posts.insert_posts(conn, [post for d in mine for post in d.posts])
        await self._deps.deferrals.record_deferrals(
            conn, [w for d in mine for w in d.waiting], [s for d in mine for s in d.settled]
        )
        await write_outbox(conn, [row for d in mine for row in d.rows])
        for d in mine:
            for pending_post_id, platform, retry_at, reason, _ in d.waiting:
                metrics.DEFERRALS.labels(platform, reason).inc()
                log.info(
                    "pending post %s: %s put off until %s (%s)", pending_post_id, platform, retry_at.isoformat(), reason
                )


@dataclass(frozen=True)
class _Deferred:
    """A pending post put off, and what recording it writes."""

    pending: PublishingPost
    results: list[PlatformResult]
    retry_at: datetime
    posts: list[dict[str, Any]]
    waiting: list[tuple[uuid.UUID, str, datetime, str, bool]]
    settled: list[tuple[Any, ...]]
    rows: list[OutboxRow]


def _settled_row(pending_post_id: uuid.UUID, r: PlatformResult) -> tuple[Any, ...]:
    p = r.published
    return (
        pending_post_id,
        r.platform,
        PUBLISHED if p else FAILED,
        None if p else (r.reason.value if r.reason else None),
        None if p else r.detail,
        p.external_id if p else None,
        p.external_url if p else None,
        p.published_at if p else None,
    )
