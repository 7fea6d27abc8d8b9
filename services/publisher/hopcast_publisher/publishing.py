"""Publishing a pending post exactly once, although the platform call cannot be inside a
database transaction.

Three steps, each safe to crash after:

1. `start_publishing`, in the transaction of the input that completed the pending post
   (the consumer's transaction, with its inbox row): choose the account for each platform,
   write one `publish_attempts` row per platform with its idempotency key (or its failure,
   NO_ACCOUNT_FOR_PLATFORM), and move the pending post to PUBLISHING. When nothing needs a
   platform call (no usable account anywhere, an inactive organization or brand) it is
   completed right there, in the same transaction. A NOTIFY wakes the publishing loop at
   commit.
2. The publishing loop (`PublishingLoop`) leases PUBLISHING pending posts (FOR UPDATE
   SKIP LOCKED, a lease of PUBLISHER_LEASE_S), opens the tokens, and calls the adapters,
   every platform of a post concurrently; each call carries the attempt's idempotency key
   and fixed creation time. No transaction is open meanwhile.
3. `complete`, one transaction for a batch: mark each pending post PUBLISHED,
   PARTIALLY_PUBLISHED or PUBLISH_FAILED - only if it is still PUBLISHING under this
   worker's lease - and, for those marked, write the posts rows and the outbox rows of
   PostPublished (publisher.events and analytics.events) or PostPublishFailed per platform,
   and the run's one ScheduleRunCompleted. Everything a pending post writes is made and
   validated first (`prepare_completion`): one that cannot be completed (its events break the
   contract, the database refuses its rows - then the batch is written one by one to find
   it) is left out, so it never holds up the others, and tried again alone with backoff
   (`completion_backoff_s`, doubling); after `completion_max_attempts` it ends PUBLISH_FAILED
   with PostPublishFailed RETRIES_EXHAUSTED per platform and its ScheduleRunCompleted, logged
   and counted (hopcast_publisher_completion_failures_total).

A crash between 1 and 3 leaves the pending post PUBLISHING; when its lease runs out, a
loop (this replica after a restart, or another) claims it again, and since it was claimed
before, each adapter first asks the platform whether the post already exists (Bluesky: the
record key derived from the idempotency key; Mastodon: the Idempotency-Key header; X and
LinkedIn: the account's latest posts with the same text; sandbox: ids derived from the
key) before posting. The lease is longer than a publication may take, so two workers never
publish the same post at once; a worker that finds its lease gone at step 3 writes nothing
(the row's status or lease token no longer match), and posts' UNIQUE (pending_post_id,
platform) backs that up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from hopcast_publisher import metrics
from hopcast_publisher.adapters import repository as repo
from hopcast_publisher.adapters.credentials import AccountTokens, TokenDecryptError
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PlatformAdapter,
    PostRequest,
    Published,
    PublishFailure,
    RefreshedTokens,
)
from hopcast_publisher.config import PublisherSettings
from hopcast_publisher.domain.accounts import pick_accounts
from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.pending import Status
from hopcast_publisher.domain.posts import idempotency_key, post_id_for, post_text
from hopcast_shared import outbox
from hopcast_shared.contract import (
    Angle,
    Platform,
    PostPublished,
    PostPublishFailed,
    PublishFailureReason,
    RunOutcome,
    ScheduleRunCompleted,
)
from hopcast_shared.contract.events import EventData
from hopcast_shared.db import INFRASTRUCTURE_ERRORS, Conn, Database
from hopcast_shared.outbox import OutboxRow, write_outbox
from hopcast_shared.redact import redact_text
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import extract_context, tracer

log = logging.getLogger(__name__)
SOURCE = "hopcast/publisher"

PENDING, PUBLISHED, FAILED = "PENDING", "PUBLISHED", "FAILED"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PlatformResult:
    platform: str
    social_account_id: uuid.UUID | None
    published: Published | None = None
    reason: PublishFailureReason | None = None
    detail: str = ""


@dataclass(frozen=True)
class _Failed:
    """A pending post that could not be completed this round, and why."""

    pending: asyncpg.Record
    results: Sequence[PlatformResult]
    error: BaseException


# --- step 1 ------------------------------------------------------------------------------------


async def start_publishing(
    conn: Conn, kafka: KafkaSettings, pending_posts: Sequence[asyncpg.Record]
) -> dict[uuid.UUID, Status]:
    """In the caller's transaction, for pending posts it has just moved to PUBLISHING (the
    status change wakes the publishing loop at commit: migration 0002's trigger): choose the
    account of each platform and record one attempt per platform with its idempotency key,
    for all of them in one statement; complete at once those with nothing to call a platform
    for (no usable account anywhere, an inactive organization or brand). Returns the status
    each one is left in."""
    if not pending_posts:
        return {}
    contexts = await repo.publishing_contexts(
        conn, [(p["organization_id"], p["brand_profile_id"]) for p in pending_posts]
    )
    attempts: list[tuple[uuid.UUID, str, str, uuid.UUID | None, str, str | None, str | None]] = []
    at_once: list[tuple[asyncpg.Record, Sequence[PlatformResult], RunOutcome]] = []
    statuses: dict[uuid.UUID, Status] = {}
    for pending in pending_posts:
        org_active, brand_active, linked = contexts[(pending["organization_id"], pending["brand_profile_id"])]
        platforms: list[str] = list(pending["platforms"])
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
                    key = idempotency_key(pending["id"], platform)
                    attempts.append((pending["id"], platform, key, chosen.social_account_id, PENDING, None, None))
                    calls += 1
        for r in results:
            key = idempotency_key(pending["id"], r.platform)
            reason = r.reason.value if r.reason else None
            attempts.append((pending["id"], r.platform, key, None, FAILED, reason, r.detail))
        if calls:
            statuses[pending["id"]] = Status.PUBLISHING
        else:
            # Nothing to call a platform for: end it now, in this transaction.
            outcome = run_outcome([], organization_active=org_active, brand_active=brand_active)
            at_once.append((pending, results, outcome))
            statuses[pending["id"]] = Status(outcome.value)
    await repo.insert_attempts(conn, attempts)
    if at_once:
        await complete(conn, kafka, at_once, lease_token=None)
    return statuses


# --- step 3 ------------------------------------------------------------------------------------


def _completion_events(
    pending: asyncpg.Record, results: Sequence[PlatformResult], outcome: RunOutcome
) -> tuple[list[dict[str, Any]], list[EventData]]:
    posts: list[dict[str, Any]] = []
    events: list[EventData] = []
    text = post_text(pending["content"], pending["hashtags"] or [], pending["media_urls"] or []) if results else ""
    for r in results:
        if r.published is not None and r.social_account_id is not None:
            post = {
                "id": post_id_for(pending["id"], r.platform),
                "organization_id": pending["organization_id"],
                "pending_post_id": pending["id"],
                "run_id": pending["run_id"],
                "schedule_id": pending["schedule_id"],
                "brand_profile_id": pending["brand_profile_id"],
                "material_id": pending["material_id"],
                "social_account_id": r.social_account_id,
                "platform": r.platform,
                "angle": pending["angle"],
                "content": text,
                "external_id": r.published.external_id,
                "external_url": r.published.external_url,
                "published_at": r.published.published_at,
            }
            posts.append(post)
            events.append(
                PostPublished(
                    post_id=post["id"],
                    pending_post_id=pending["id"],
                    run_id=pending["run_id"],
                    material_id=pending["material_id"],
                    schedule_id=pending["schedule_id"],
                    brand_profile_id=pending["brand_profile_id"],
                    social_account_id=r.social_account_id,
                    platform=Platform(r.platform),
                    angle=Angle(pending["angle"]),
                    external_id=r.published.external_id,
                    external_url=r.published.external_url,
                    published_at=r.published.published_at,
                )
            )
        else:
            events.append(
                PostPublishFailed(
                    pending_post_id=pending["id"],
                    run_id=pending["run_id"],
                    platform=Platform(r.platform),
                    reason=r.reason or PublishFailureReason.PLATFORM_REJECTED,
                    detail=r.detail[:2000],
                )
            )
    events.append(
        ScheduleRunCompleted(
            run_id=pending["run_id"],
            schedule_id=pending["schedule_id"],
            brand_profile_id=pending["brand_profile_id"],
            outcome=outcome,
            due_at=pending["due_at"],
            completed_at=now_utc(),
        )
    )
    return posts, events


def event_rows(
    kafka: KafkaSettings, pending: asyncpg.Record, events: Sequence[EventData], trace: Sequence[tuple[str, str]]
) -> list[OutboxRow]:
    """Outbox rows of events about a pending post: keyed by its organization, in its run's saga,
    caused by the input that started its publishing, carrying the trace context `trace`."""
    cause = pending["cause_event_id"]
    return outbox.event_rows(
        kafka,
        events,
        organization_id=pending["organization_id"],
        source=SOURCE,
        correlation_id=str(pending["run_id"]),
        causation_id=str(cause) if cause else None,
        trace=trace,
    )


def span_headers(pending: asyncpg.Record, outcome: RunOutcome) -> list[tuple[str, str]]:
    """The trace context of the events of a pending post's completion: a "publish pending
    post" span, child of the input that started its publishing (so a run stays one trace).
    The span is not made current and its context is written as W3C trace context directly:
    attaching it and running the propagators would cost more than the span, per post."""
    stored = pending["trace_headers"] or []
    parent = extract_context((k, v.encode("latin-1")) for k, v in stored) if stored else otel_context.Context()
    span = tracer.start_span(
        "publish pending post",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={"hopcast.pending_post_id": str(pending["id"]), "hopcast.outcome": outcome.value},
    )
    span.end()
    context = span.get_span_context()
    if not context.is_valid:
        return []
    headers = [("traceparent", f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}")]
    if context.trace_state:
        headers.append(("tracestate", context.trace_state.to_header()))
    return headers


@dataclass(frozen=True)
class Completion:
    """What completing one pending post writes, made (and validated against the contract)
    before any of it is written: a post that cannot be completed is found here, alone."""

    pending: asyncpg.Record
    results: Sequence[PlatformResult]
    outcome: RunOutcome
    posts: list[dict[str, Any]]
    rows: list[OutboxRow]
    settled: list[tuple[uuid.UUID, str, str, str | None, str | None]]


def prepare_completion(
    kafka: KafkaSettings, pending: asyncpg.Record, results: Sequence[PlatformResult], outcome: RunOutcome
) -> Completion:
    """The posts, events and attempt results of one pending post; raises when its events
    break the contract (a platform's answer that is no URL, a corrupt row)."""
    posts, events = _completion_events(pending, results, outcome)
    rows = event_rows(kafka, pending, events, span_headers(pending, outcome))
    settled = [
        (
            pending["id"],
            r.platform,
            PUBLISHED if r.published else FAILED,
            None if r.published else (r.reason.value if r.reason else None),
            None if r.published else r.detail,
        )
        for r in results
    ]
    return Completion(pending, results, outcome, posts, rows, settled)


async def write_completions(
    conn: Conn, completions: Sequence[Completion], *, lease_token: uuid.UUID | None
) -> list[Completion]:
    """In the caller's transaction: finish the pending posts still held under `lease_token`
    and write their posts, attempt results and events. Returns those finished."""
    finished = await repo.finish_pending_posts(
        conn, [(c.pending["id"], c.outcome.value) for c in completions], lease_token=lease_token
    )
    done: list[Completion] = []
    for c in completions:
        if c.pending["id"] in finished:
            done.append(c)
        else:
            log.warning("pending post %s was taken over by another worker; its results are dropped", c.pending["id"])
    await repo.insert_posts(conn, [post for c in done for post in c.posts])
    await repo.settle_attempts(conn, [s for c in done for s in c.settled])
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
    conn: Conn,
    kafka: KafkaSettings,
    batch: Sequence[tuple[asyncpg.Record, Sequence[PlatformResult], RunOutcome]],
    *,
    lease_token: uuid.UUID | None,
) -> int:
    """In the caller's transaction: finish the pending posts still held under `lease_token`
    and write their posts and events. Returns how many were finished."""
    done = await write_completions(
        conn, [prepare_completion(kafka, p, r, o) for p, r, o in batch], lease_token=lease_token
    )
    count_completed(done)
    return len(done)


def given_up(
    pending: asyncpg.Record, results: Sequence[PlatformResult], attempts: int, error: str
) -> list[PlatformResult]:
    """Every platform of a pending post that could not be completed fails RETRIES_EXHAUSTED
    (so billing refunds it and the run ends), saying what went wrong and, where the platform
    took the post, that it may be live there."""
    platforms = [r.platform for r in results] or list(pending["platforms"] or [])
    by_platform = {r.platform: r for r in results}
    failed = []
    for platform in platforms:
        r = by_platform.get(platform)
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


# --- step 2: the loop --------------------------------------------------------------------------


class PublishingLoop:
    """Leases PUBLISHING pending posts, publishes them, completes them; woken by NOTIFY."""

    def __init__(
        self,
        db: Database,
        kafka: KafkaSettings,
        adapters: Mapping[str, PlatformAdapter],
        tokens: AccountTokens,
        settings: PublisherSettings,
        *,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self._db = db
        self._kafka = kafka
        self._adapters = adapters
        self._tokens = tokens
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._semaphore = asyncio.Semaphore(settings.publish_concurrency)
        self._refresh_locks: dict[uuid.UUID, asyncio.Lock] = {}

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: `publish_workers` rounds at once (their leases never overlap), each
        publishing what is waiting, then sleeping until NOTIFY or the poll interval."""
        listener = await asyncpg.connect(self._db.url)
        try:
            await listener.add_listener(repo.PUBLISH_CHANNEL, self.wake)
            await asyncio.gather(*(self._rounds() for _ in range(self._settings.publish_workers)))
        finally:
            await listener.close()

    async def _rounds(self) -> None:
        while True:
            self._wake.clear()
            done = await self.publish_batch()
            if done >= self._settings.publish_batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._settings.poll_interval_s)

    async def publish_batch(self) -> int:
        """One round: lease, publish, complete. Returns how many pending posts were leased.

        A pending post that cannot be completed (its publication or its events raise, or the
        database refuses its rows) never holds up the others: the batch is completed without
        it, and it is retried alone later (`_completion_failed`)."""
        lease = uuid.uuid4()
        async with self._db.transaction() as conn:
            claimed = await repo.claim_publishing(
                conn, lease_token=lease, lease_s=self._settings.lease_s, limit=self._settings.publish_batch_size
            )
            if not claimed:
                return 0
            attempts = await repo.attempts_of(conn, [p["id"] for p in claimed])
            accounts = await repo.accounts_by_id(
                conn, list({a["social_account_id"] for a in attempts if a["social_account_id"] is not None})
            )
        started = time.perf_counter()
        by_post: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for a in attempts:
            by_post.setdefault(a["pending_post_id"], []).append(a)
        outcomes = await self.publish_claimed(claimed, by_post, accounts)
        prepared: list[Completion] = []
        failed: list[_Failed] = []
        for pending, outcome in zip(claimed, outcomes, strict=True):
            if isinstance(outcome, _Failed):
                failed.append(outcome)
                continue
            try:
                prepared.append(prepare_completion(self._kafka, *outcome))
            except Exception as exc:
                failed.append(_Failed(pending, outcome[1], exc))
        failed += await self._complete_batch(prepared, lease)
        for failure in failed:
            await self._completion_failed(failure, lease)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        return len(claimed)

    async def publish_claimed(
        self,
        claimed: Sequence[asyncpg.Record],
        attempts: Mapping[uuid.UUID, Sequence[asyncpg.Record]],
        accounts: Mapping[uuid.UUID, asyncpg.Record],
    ) -> list[tuple[asyncpg.Record, list[PlatformResult], RunOutcome] | _Failed]:
        """Publish leased pending posts (their attempts by pending post id): every platform of
        every post at once, one task per platform call (within publish_concurrency), tokens
        opened once per account. For each post, its results and outcome, or why it failed."""
        outcomes: list[tuple[asyncpg.Record, list[PlatformResult], RunOutcome] | _Failed | None] = []
        calls: list[Awaitable[PlatformResult]] = []
        owners: list[int] = []
        opened: dict[uuid.UUID, AccountCredentials | None] = {}
        for index, pending in enumerate(claimed):
            mine = attempts.get(pending["id"], [])
            try:
                stopped = self._stopped(pending, mine)
                if stopped is not None:
                    outcomes.append(stopped)
                    continue
                resumed = pending["claims"] > 1
                if resumed:
                    log.info("resuming publication of pending post %s (claim %d)", pending["id"], pending["claims"])
                    metrics.RESUMED.inc()
                text = post_text(pending["content"], pending["hashtags"] or [], pending["media_urls"] or [])
            except Exception as exc:
                outcomes.append(_Failed(pending, [], exc))
                continue
            outcomes.append(None)
            for attempt in mine:
                calls.append(self._publish_platform(pending, attempt, accounts, text, resumed, opened))
                owners.append(index)
        results: dict[int, list[PlatformResult | BaseException]] = {}
        for index, result in zip(owners, await asyncio.gather(*calls, return_exceptions=True), strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled
            results.setdefault(index, []).append(result)
        done: list[tuple[asyncpg.Record, list[PlatformResult], RunOutcome] | _Failed] = []
        for index, (pending, outcome) in enumerate(zip(claimed, outcomes, strict=True)):
            if outcome is not None:
                done.append(outcome)
                continue
            mine_results = results.get(index, [])
            errors = [r for r in mine_results if isinstance(r, BaseException)]
            if errors:
                done.append(_Failed(pending, [], errors[0]))
                continue
            published = [r for r in mine_results if isinstance(r, PlatformResult)]
            done.append((pending, published, run_outcome([r.published is not None for r in published])))
        return done

    async def _publish_pending(
        self,
        pending: asyncpg.Record,
        attempts: Sequence[asyncpg.Record],
        accounts: Mapping[uuid.UUID, asyncpg.Record],
    ) -> tuple[asyncpg.Record, list[PlatformResult], RunOutcome]:
        """One leased pending post published (`publish_claimed` of one)."""
        (outcome,) = await self.publish_claimed([pending], {pending["id"]: attempts}, accounts)
        if isinstance(outcome, _Failed):
            raise outcome.error
        return outcome

    def _stopped(
        self, pending: asyncpg.Record, attempts: Sequence[asyncpg.Record]
    ) -> tuple[asyncpg.Record, list[PlatformResult], RunOutcome] | None:
        """Deleted after publishing started and before any platform was called: none is. (A
        resumed post may be on a platform already; it is finished and recorded.)"""
        org_active, brand_active = pending["org_active"], pending["brand_active"]
        if pending["claims"] > 1 or (org_active and brand_active):
            return None
        detail = "the organization is deleted" if not org_active else "the brand is deleted"
        stopped = [
            PlatformResult(a["platform"], None, None, PublishFailureReason.NO_ACCOUNT_FOR_PLATFORM, detail)
            if a["status"] != FAILED
            else PlatformResult(
                a["platform"], None, None, PublishFailureReason(a["failure_reason"]), a["failure_detail"] or ""
            )
            for a in attempts
        ]
        return pending, stopped, run_outcome([], organization_active=org_active, brand_active=brand_active)

    async def _complete_batch(self, prepared: Sequence[Completion], lease: uuid.UUID) -> list[_Failed]:
        """One transaction for the batch; should the database refuse it, one each, so only the
        pending posts it refuses fail. Returns those."""
        if not prepared:
            return []
        try:
            async with self._db.transaction() as conn:
                done = await write_completions(conn, prepared, lease_token=lease)
        except INFRASTRUCTURE_ERRORS:
            raise  # not the posts' fault: the loop stops, the leases run out, they are resumed
        except Exception as exc:
            if len(prepared) == 1:
                return [_Failed(prepared[0].pending, prepared[0].results, exc)]
            log.warning(
                "completing a batch of %d pending posts failed (%s); completing them one by one",
                len(prepared),
                describe_failure(exc),
            )
        else:
            count_completed(done)
            return []
        failed: list[_Failed] = []
        for completion in prepared:
            try:
                async with self._db.transaction() as conn:
                    done = await write_completions(conn, [completion], lease_token=lease)
            except INFRASTRUCTURE_ERRORS:
                raise
            except Exception as exc:
                failed.append(_Failed(completion.pending, completion.results, exc))
            else:
                count_completed(done)
        return failed

    async def _completion_failed(self, failure: _Failed, lease: uuid.UUID) -> None:
        """Retry a pending post that could not be completed later, alone, with backoff; after
        `completion_max_attempts` tries, end it PUBLISH_FAILED: PostPublishFailed
        RETRIES_EXHAUSTED per platform and its run's one ScheduleRunCompleted."""
        pending = failure.pending
        attempts = pending["completion_failures"] + 1
        error = describe_failure(failure.error)
        settings = self._settings
        if attempts < settings.completion_max_attempts:
            delay = min(settings.completion_backoff_s * 2 ** (attempts - 1), settings.completion_backoff_max_s)
            async with self._db.transaction() as conn:
                held = await repo.defer_completion(
                    conn, pending["id"], lease_token=lease, failures=attempts, error=error, retry_in_s=delay
                )
            log.warning(
                "pending post %s could not be completed (attempt %d of %d, next in %.1f s): %s",
                pending["id"],
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
            pending["id"],
            attempts,
            error,
            exc_info=failure.error,
        )
        try:
            ending = prepare_completion(
                self._kafka, pending, given_up(pending, failure.results, attempts, error), RunOutcome.PUBLISH_FAILED
            )
            async with self._db.transaction() as conn:
                done = await write_completions(conn, [ending], lease_token=lease)
                await repo.record_completion_error(conn, pending["id"], failures=attempts, error=error)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:
            # Not even its failure can be written as events (a corrupt row): end it without
            # them, loudly; the error stays on the row (GET /pending-posts/{id}).
            both = f"{error}; ending it failed too: {describe_failure(exc)}"
            async with self._db.transaction() as conn:
                held = await repo.abandon_pending_post(
                    conn, pending["id"], lease_token=lease, failures=attempts, error=both
                )
            log.error("pending post %s ended PUBLISH_FAILED without events: %s", pending["id"], both, exc_info=exc)
            if held:
                metrics.COMPLETION_FAILURES.labels("abandoned").inc()
            return
        count_completed(done)
        if done:
            metrics.COMPLETION_FAILURES.labels("given_up").inc()

    async def _publish_platform(
        self,
        pending: asyncpg.Record,
        attempt: asyncpg.Record,
        accounts: Mapping[uuid.UUID, asyncpg.Record],
        text: str,
        resumed: bool,
        opened: dict[uuid.UUID, AccountCredentials | None],
    ) -> PlatformResult:
        platform = attempt["platform"]
        account_id = attempt["social_account_id"]
        if attempt["status"] == FAILED:
            return PlatformResult(
                platform,
                account_id,
                None,
                PublishFailureReason(attempt["failure_reason"]),
                attempt["failure_detail"] or "",
            )
        row = accounts.get(account_id)
        if row is None:
            return PlatformResult(
                platform,
                account_id,
                None,
                PublishFailureReason.NO_ACCOUNT_FOR_PLATFORM,
                "the chosen account was purged",
            )
        adapter = self._adapters.get(platform)
        if adapter is None:
            return PlatformResult(
                platform, account_id, None, PublishFailureReason.PLATFORM_REJECTED, f"no live adapter for {platform}"
            )
        # Tokens are opened once per account and batch (the same account publishes many posts).
        if account_id not in opened:
            try:
                opened[account_id] = self._credentials(row)
            except TokenDecryptError:
                log.error("stored token of account %s does not decrypt (tampered or key missing)", account_id)
                opened[account_id] = None
        credentials = opened[account_id]
        if credentials is None:
            return PlatformResult(
                platform, account_id, None, PublishFailureReason.TOKEN_INVALID, "the stored token cannot be decrypted"
            )
        request = PostRequest(attempt["idempotency_key"], text, attempt["created_at"])
        async with self._semaphore:
            try:
                credentials = await self._fresh_credentials(adapter, credentials, opened)

                async def refreshed(account: AccountCredentials, tokens: RefreshedTokens) -> None:
                    opened[account.social_account_id] = account
                    await self._store_tokens(account, tokens)

                published = await adapter.publish(credentials, request, resumed=resumed, on_refreshed=refreshed)
            except PublishFailure as failure:
                log.warning("publishing pending post %s on %s failed: %s", pending["id"], platform, failure)
                return PlatformResult(platform, account_id, None, failure.reason, failure.detail)
            except Exception as exc:
                # An adapter bug must not leave the run open forever: it fails this platform.
                log.exception("adapter %s crashed on pending post %s", platform, pending["id"])
                return PlatformResult(
                    platform,
                    account_id,
                    None,
                    PublishFailureReason.RETRIES_EXHAUSTED,
                    f"adapter error: {type(exc).__name__}",
                )
        return PlatformResult(platform, account_id, published)

    def _credentials(self, row: asyncpg.Record) -> AccountCredentials:
        account_id = row["id"]
        return AccountCredentials(
            social_account_id=account_id,
            platform=row["platform"],
            handle=row["handle"],
            external_account_id=row["external_account_id"],
            api_base_url=row["api_base_url"],
            access_token=self._tokens.open(account_id, row["access_token"]),
            refresh_token=self._tokens.open(account_id, row["refresh_token"]) if row["refresh_token"] else None,
            token_expires_at=row["token_expires_at"],
        )

    async def _fresh_credentials(
        self,
        adapter: PlatformAdapter,
        credentials: AccountCredentials,
        opened: dict[uuid.UUID, AccountCredentials | None],
    ) -> AccountCredentials:
        """The account's credentials, refreshed first when they expire soon: once per account,
        however many of its posts are in the batch."""
        account_id = credentials.social_account_id
        async with self._refresh_locks.setdefault(account_id, asyncio.Lock()):
            current = opened.get(account_id) or credentials
            fresh = await self._refresh_if_expiring(adapter, current)
            opened[account_id] = fresh
            return fresh

    async def _refresh_if_expiring(self, adapter: PlatformAdapter, account: AccountCredentials) -> AccountCredentials:
        expires = account.token_expires_at
        if expires is None or account.refresh_token is None:
            return account
        if expires - timedelta(seconds=self._settings.refresh_margin_s) > self._clock():
            return account
        try:
            tokens = await adapter.refresh(account)
        except PublishFailure as failure:
            # The current token may still work; a 401 will say otherwise.
            log.warning("refreshing the token of account %s failed: %s", account.social_account_id, failure.detail)
            return account
        refreshed = account.with_tokens(tokens)
        await self._store_tokens(refreshed, tokens)
        return refreshed

    async def _store_tokens(self, account: AccountCredentials, tokens: RefreshedTokens) -> None:
        account_id = account.social_account_id
        async with self._db.transaction() as conn:
            await repo.store_tokens(
                conn,
                account_id,
                access_token=self._tokens.seal(account_id, account.access_token),
                refresh_token=self._tokens.seal(account_id, account.refresh_token) if account.refresh_token else None,
                expires_at=account.token_expires_at,
            )
        metrics.TOKENS_REFRESHED.labels(account.platform).inc()
        log.info("stored refreshed tokens of account %s", account_id)
