"""The publishing loop: leases PUBLISHING pending posts, calls the platforms with no
transaction open, and completes them (step 2 of three; steps 1 and 3, the decisions, are
`service_layer/publishing.py`, giving up is `service_layer/giving_up.py`).

How it wakes: the database trigger `pending_post_publishing_notify` (migration
0002_publishing_notify.sql) runs `pg_notify('hopcast_publisher_publish')` whenever a pending
post's status becomes PUBLISHING, which the pending-post handler writes in the consumer's
transaction together with `start_publishing`'s attempts. PostgreSQL delivers a NOTIFY only
when that transaction commits, so the loop never looks before the pending post and its
attempts are visible, and a rolled-back start wakes nobody. That is why it is a trigger and
not a call from the handler: the wake-up is tied to the commit, whoever writes the status.
The loop LISTENs on a connection of its own (`run`); a missed notification costs at most
`poll_interval_s`, since a round that finds less than a full batch sleeps no longer than that.

The lease (`lease_s`, FOR UPDATE SKIP LOCKED in `PendingPostRepository.claim_publishing`) lets
any number of replicas and rounds share the posts. Each post's lease is kept alive while its
calls wait behind the concurrency limit and the accounts' turns, and confirmed immediately
before each call that may create it (`lease_keeper.py`): a call whose lease was lost is not
sent, and its post is dropped from the round. A crashed worker's posts, and dropped ones, are
resumed when their lease runs out, and each adapter first asks the platform whether the post
already exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
from opentelemetry.trace import SpanKind

from hopcast_publisher import metrics
from hopcast_publisher.adapters.credentials import AccountTokens, OpenCredentials, TokenDecryptError
from hopcast_publisher.adapters.leases import QUEUED, SENT, queue_first_claims, record_sending
from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PlatformAdapter,
    PostMedia,
    PostRequest,
    PublishFailure,
    RefreshedTokens,
)
from hopcast_publisher.adapters.platforms.http import HttpPlatformAdapter
from hopcast_publisher.adapters.platforms.lease import LeaseLost
from hopcast_publisher.adapters.platforms.rate_limits import PublishDeferred
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth
from hopcast_publisher.config import LEASE_MARGIN_S, PublisherSettings
from hopcast_publisher.domain.accounts import SocialAccount
from hopcast_publisher.domain.outcome import run_outcome
from hopcast_publisher.domain.publishing import PublishAttempt, PublishingPost
from hopcast_publisher.entrypoints.lease_keeper import LeaseKeeper, PostLease
from hopcast_publisher.service_layer.account_health import AccountHealth
from hopcast_publisher.service_layer.deferrals import SharedLimits, deferred_result, settled_result
from hopcast_publisher.service_layer.deps import PublisherDeps
from hopcast_publisher.service_layer.giving_up import complete_batch, completion_failed, stopped_before_publishing
from hopcast_publisher.service_layer.publishing import (
    FAILED,
    Completion,
    Failed,
    PlatformResult,
    now_utc,
    pending_trace,
    prepare_completion,
)
from hopcast_shared.contract import PublishFailureReason, ReauthReason, RunOutcome
from hopcast_shared.db import Database
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.telemetry import tracer

log = logging.getLogger(__name__)

# The channel of the trigger `pending_post_publishing_notify` (migration 0002): a pending post
# started publishing.
PUBLISH_CHANNEL = "hopcast_publisher_publish"


class PublishingLoop:
    """Leases PUBLISHING pending posts, publishes them, completes them; woken by NOTIFY.

    `deps` are the service's (bootstrap passes the ones its handlers have); without them the
    loop makes its own from `tokens` and `settings`, as tests and the benchmark do."""

    def __init__(
        self,
        db: Database,
        kafka: KafkaSettings,
        adapters: Mapping[str, PlatformAdapter],
        tokens: AccountTokens,
        settings: PublisherSettings,
        *,
        clock: Callable[[], datetime] = now_utc,
        deps: PublisherDeps | None = None,
    ) -> None:
        self._db = db
        self._kafka = kafka
        self._adapters = adapters
        self._settings = settings
        self.deps = deps or PublisherDeps(tokens=tokens, settings=settings)
        self.health = AccountHealth(db, kafka, self.deps, clock=clock)
        self._credentials = OpenCredentials(
            self.deps.tokens,
            refresh_margin_s=settings.refresh_margin_s,
            clock=clock,
            keep_refreshed=self.health.keep_refreshed,
        )
        self.limits = SharedLimits(self.deps, db, kafka, adapters)
        self._wake = asyncio.Event()
        self._semaphore = asyncio.Semaphore(settings.publish_concurrency)
        self.leases = LeaseKeeper(db, lease_s=settings.lease_s, margin_s=LEASE_MARGIN_S)

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled: `publish_workers` rounds at once (their leases never overlap), each
        publishing what is waiting, then sleeping until NOTIFY or the poll interval."""
        listener = await asyncpg.connect(self._db.url)
        try:
            await listener.add_listener(PUBLISH_CHANNEL, self.wake)
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
        it, and it is retried alone later (`giving_up.completion_failed`)."""
        lease = uuid.uuid4()
        claimed_at = self.leases.clock()
        async with self._db.transaction() as conn:
            claimed = await self.deps.pending_posts.claim_publishing(
                conn, lease_token=lease, lease_s=self._settings.lease_s, limit=self._settings.publish_batch_size
            )
            if not claimed:
                return 0
            await queue_first_claims(conn, [p.id for p in claimed if p.claims == 1])
            attempts = await self.deps.pending_posts.attempts_of(conn, [p.id for p in claimed])
            accounts = await self.deps.accounts.accounts_by_id(
                conn, list({a.social_account_id for a in attempts if a.social_account_id is not None})
            )
        self.leases.hold(lease, [p.id for p in claimed], since=claimed_at)
        try:
            await self._publish_leased(claimed, attempts, accounts, lease)
        finally:
            self.leases.release(p.id for p in claimed)
        return len(claimed)

    async def _publish_leased(
        self,
        claimed: Sequence[PublishingPost],
        attempts: Sequence[PublishAttempt],
        accounts: Mapping[uuid.UUID, SocialAccount],
        lease: uuid.UUID,
    ) -> None:
        started = time.perf_counter()
        by_post: dict[uuid.UUID, list[PublishAttempt]] = {}
        for a in attempts:
            by_post.setdefault(a.pending_post_id, []).append(a)
        await self.limits.reserve(attempts, accounts)
        published = await self.publish_claimed(claimed, by_post, accounts, leases=self.leases)
        outcomes = await self.limits.record(published, by_post, lease)
        prepared: list[Completion] = []
        failed: list[Failed] = []
        for outcome in outcomes:  # those deferred are recorded already
            if isinstance(outcome, Failed):
                if isinstance(outcome.error, LeaseLost):
                    # Not ours any more: whoever claims it next looks it up before any call.
                    log.warning("pending post %s dropped from this round: %s", outcome.pending.id, outcome.error)
                    continue
                failed.append(outcome)
                continue
            try:
                prepared.append(prepare_completion(self._kafka, *outcome))
            except Exception as exc:
                failed.append(Failed(outcome[0], outcome[1], exc))
        failed += await complete_batch(self.deps, self._db, prepared, lease)
        for failure in failed:
            await completion_failed(self.deps, self._db, self._kafka, failure, lease)
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)

    async def publish_claimed(
        self,
        claimed: Sequence[PublishingPost],
        attempts: Mapping[uuid.UUID, Sequence[PublishAttempt]],
        accounts: Mapping[uuid.UUID, SocialAccount],
        *,
        leases: LeaseKeeper | None = None,
    ) -> list[tuple[PublishingPost, list[PlatformResult], RunOutcome] | Failed]:
        """Publish leased pending posts (their attempts by pending post id): every platform of
        every post at once, one task per platform call (within publish_concurrency), tokens
        opened once per account. For each post, its results and outcome, or why it failed
        (LeaseLost: `leases` holds it no more, and a call was not sent)."""
        outcomes: list[tuple[PublishingPost, list[PlatformResult], RunOutcome] | Failed | None] = []
        calls: list[Awaitable[PlatformResult]] = []
        owners: list[int] = []
        opened: dict[uuid.UUID, AccountCredentials | None] = {}
        refused = _Refusals()
        for index, pending in enumerate(claimed):
            mine = attempts.get(pending.id, [])
            try:
                stopped = stopped_before_publishing(pending, mine)
                if stopped is not None:
                    outcomes.append(stopped)
                    continue
                resumed = pending.claims > 1
                if resumed:
                    log.info("resuming publication of pending post %s (claim %d)", pending.id, pending.claims)
                    metrics.RESUMED.inc()
            except Exception as exc:
                outcomes.append(Failed(pending, [], exc))
                continue
            outcomes.append(None)
            for attempt in mine:
                lease = leases.lease(pending.id) if leases is not None else None
                calls.append(self._publish_platform(pending, attempt, accounts, resumed, opened, refused, lease))
                owners.append(index)
        results: dict[int, list[PlatformResult | BaseException]] = {}
        for index, result in zip(owners, await asyncio.gather(*calls, return_exceptions=True), strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled
            results.setdefault(index, []).append(result)
        done: list[tuple[PublishingPost, list[PlatformResult], RunOutcome] | Failed] = []
        for index, (pending, outcome) in enumerate(zip(claimed, outcomes, strict=True)):
            if outcome is not None:
                done.append(outcome)
                continue
            mine_results = results.get(index, [])
            errors = [r for r in mine_results if isinstance(r, BaseException)]
            if errors:
                lost = [e for e in errors if isinstance(e, LeaseLost)]
                done.append(Failed(pending, [], (lost or errors)[0]))
                continue
            published = [r for r in mine_results if isinstance(r, PlatformResult)]
            timed_out = any(r.reason is PublishFailureReason.TIMED_OUT for r in published)
            ended = run_outcome([r.published is not None for r in published], timed_out=timed_out)
            done.append((pending, published, ended))
        return done

    async def _publish_pending(
        self,
        pending: PublishingPost,
        attempts: Sequence[PublishAttempt],
        accounts: Mapping[uuid.UUID, SocialAccount],
    ) -> tuple[PublishingPost, list[PlatformResult], RunOutcome]:
        """One leased pending post published (`publish_claimed` of one)."""
        (outcome,) = await self.publish_claimed([pending], {pending.id: attempts}, accounts)
        if isinstance(outcome, Failed):
            raise outcome.error
        return outcome

    async def _publish_platform(
        self,
        pending: PublishingPost,
        attempt: PublishAttempt,
        accounts: Mapping[uuid.UUID, SocialAccount],
        resumed: bool,
        opened: dict[uuid.UUID, AccountCredentials | None],
        refused: _Refusals,
        lease: PostLease | None,
    ) -> PlatformResult:
        platform = attempt.platform
        account_id = attempt.social_account_id
        settled = settled_result(attempt)  # at an earlier deferral of this post
        if settled is not None:
            return settled
        if attempt.status == FAILED:
            return PlatformResult(
                platform,
                account_id,
                None,
                PublishFailureReason(attempt.recorded_failure),
                attempt.failure_detail or "",
            )
        if pending.deadline_passed and (attempt.status == QUEUED or attempt.retry_at is not None):
            # Past the run's deadline: no call starts (none was sent for a QUEUED attempt, and a
            # deferred one was put off by the platform). One that may have been sent is resumed.
            return PlatformResult(
                platform, account_id, None, PublishFailureReason.TIMED_OUT, "the run's deadline passed: not sent"
            )
        account = accounts.get(account_id) if account_id is not None else None
        if account_id is None or account is None:
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
        # Exactly the drafted text, checked by the platform's own rule (for Mastodon, the account's
        # instance's limit) before any call.
        text = pending.text_for(platform)
        refusal = await _text_refusal(adapter, platform, text, account.api_base_url)
        if refusal is not None:
            log.warning("pending post %s: %s", pending.id, refusal.detail)
            return PlatformResult(platform, account_id, None, refusal.reason, refusal.detail)
        if account.needs_reauth is not None:
            # Its refresh failed for good: no platform call until upstream sends a newer pair.
            return _needs_reauth(platform, account_id, account.needs_reauth)
        # Tokens are opened once per account and batch (the same account publishes many posts).
        if account_id not in opened:
            try:
                opened[account_id] = self._credentials.open(account)
            except TokenDecryptError:
                log.error("stored token of account %s does not decrypt (tampered or key missing)", account_id)
                opened[account_id] = None
        credentials = opened[account_id]
        if credentials is None:
            return PlatformResult(
                platform, account_id, None, PublishFailureReason.TOKEN_INVALID, "the stored token cannot be decrypted"
            )
        request = PostRequest(
            attempt.idempotency_key,
            text,
            attempt.created_at,
            pending.language,
            has_media=bool(pending.media),
            media=tuple(PostMedia(m.url, m.alt_text, m.mime_type) for m in pending.media),
            lease=lease,
        )
        # Resumed, a platform is asked first only if a call may have been sent for it.
        maybe_sent = resumed and attempt.status != QUEUED
        async with self._semaphore, refused.turn(account_id, adapter):
            if account_id in refused.reasons:  # found by another post of this round
                return _needs_reauth(platform, account_id, refused.reasons[account_id])
            if isinstance(adapter, HttpPlatformAdapter) and attempt.status != SENT:
                # Recorded once its lease is confirmed, immediately before the first call.
                record = self._recording(pending.id, platform)
                if lease is None:
                    await record()
                else:
                    request = replace(request, lease=lease.with_before_call(record))
            try:
                credentials = await self._credentials.fresh(adapter, credentials, opened)

                async def refreshed(account: AccountCredentials, tokens: RefreshedTokens) -> None:
                    opened[account.social_account_id] = account
                    await self._credentials.store(account, tokens)

                # The platform call: a CLIENT span in the run's trace, its HTTP requests under it.
                with tracer.start_as_current_span(
                    f"publish {platform}",
                    context=pending_trace(pending),
                    kind=SpanKind.CLIENT,
                    attributes={"hopcast.platform": platform, "hopcast.pending_post_id": str(pending.id)},
                ):
                    published = await adapter.publish(credentials, request, resumed=maybe_sent, on_refreshed=refreshed)
            except LeaseLost:
                raise  # the post is dropped from the round, not failed
            except PublishDeferred as deferred:
                return deferred_result(platform, account_id, deferred)
            except PublishFailure as failure:
                log.warning("publishing pending post %s on %s failed: %s", pending.id, platform, failure)
                if isinstance(failure, NeedsReauth):
                    refused.reasons[account_id] = failure.reauth.value
                    await self.health.mark_needs_reauth(account_id, failure.reauth)
                return PlatformResult(platform, account_id, None, failure.reason, failure.detail)
            except Exception as exc:
                # An adapter bug must not leave the run open forever: it fails this platform.
                log.exception("adapter %s crashed on pending post %s", platform, pending.id)
                return PlatformResult(
                    platform,
                    account_id,
                    None,
                    PublishFailureReason.RETRIES_EXHAUSTED,
                    f"adapter error: {type(exc).__name__}",
                )
        return PlatformResult(platform, account_id, published)

    def _recording(self, pending_post_id: uuid.UUID, platform: str) -> Callable[[], Awaitable[None]]:
        """Records, once, that a call for the attempt is about to be sent (`adapters/leases.py`);
        when it cannot be, no call is sent and the post is dropped from the round, as for a
        lost lease."""
        recorded = False

        async def record() -> None:
            nonlocal recorded
            if recorded:
                return
            try:
                async with self._db.transaction() as conn:
                    await record_sending(conn, pending_post_id, platform)
            except Exception as exc:
                raise LeaseLost(f"could not record the call before sending it ({type(exc).__name__})") from exc
            recorded = True

        return record


class _Refusals:
    """The accounts of one round found needing re-authorization, and one turn at a time per
    account on a real platform, so that no post of the round calls it for an account another
    post has just found refused. (HTTP adapters already call one at a time per account, so
    this costs them no concurrency; the sandbox, which never refuses, is not held up.)"""

    def __init__(self) -> None:
        self.reasons: dict[uuid.UUID, str] = {}
        self._turns: dict[uuid.UUID, asyncio.Lock] = {}

    def turn(self, account_id: uuid.UUID, adapter: PlatformAdapter) -> contextlib.AbstractAsyncContextManager[Any]:
        if not isinstance(adapter, HttpPlatformAdapter):
            return contextlib.nullcontext()
        return self._turns.setdefault(account_id, asyncio.Lock())


async def _text_refusal(
    adapter: PlatformAdapter, platform: str, text: str, api_base_url: str | None
) -> PublishFailure | None:
    """PLATFORM_REJECTED when the platform's rule refuses the text (EGRESS_REFUSED when the
    account's server, asked for its limit, may not be reached)."""
    try:
        refusal = await adapter.text_refusal(platform, text, api_base_url=api_base_url)
    except PublishFailure as failure:
        return failure
    return None if refusal is None else PublishFailure(PublishFailureReason.PLATFORM_REJECTED, refusal)


def _needs_reauth(platform: str, account_id: uuid.UUID, reason: str) -> PlatformResult:
    return PlatformResult(
        platform,
        account_id,
        None,
        PublishFailureReason.TOKEN_INVALID,
        f"the account needs re-authorization ({ReauthReason(reason).value}): connect it again",
    )
