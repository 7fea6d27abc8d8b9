"""The one interface every platform adapter implements, and what they share: the retry
policy, per-account rate limits, and the never-a-double-post rule.

`PlatformAdapter.publish` posts once or fails with a `PublishFailure` naming a contract
reason. `publish_with_retries` drives a platform's three calls (create, find existing,
refresh) under one policy:

- 429: wait for Retry-After (or the rate-limit reset, or backoff) and try again when that is
  at most `max_wait_s` away; a later reset (a daily cap, a long window) raises
  `PublishDeferred` with it instead, and so do 429s that never say when they end once the
  tries run out (`rate_limits.py`): the caller publishes again at the reset;
- 5xx, a timeout or a connection broken after the request was sent: the outcome is
  unknown, so before trying again ask the platform whether the post exists (by the
  idempotency key where the platform has one, else by its text); found means published;
- 401 (or an expired-token answer): refresh the token once, store it, try again; a second
  401 is TOKEN_INVALID;
- any other 4xx: PLATFORM_REJECTED at once, never retried;
- attempts or the deadline used up: RETRIES_EXHAUSTED.

Backoff is exponential with jitter (half fixed, half random), capped.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from hopcast_publisher.adapters.platforms.lease import HeldLease
from hopcast_publisher.adapters.platforms.rate_limits import RateLimit
from hopcast_publisher.domain.publishing import text_refusal
from hopcast_shared.contract import PublishFailureReason
from hopcast_shared.redact import redact_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountCredentials:
    """An account as an adapter uses it; tokens are plaintext here, in memory only."""

    social_account_id: uuid.UUID
    platform: str
    handle: str
    external_account_id: str | None
    api_base_url: str | None
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    token_expires_at: datetime | None = None
    organization_id: uuid.UUID | None = None
    """The account's organization: what its media uploads are remembered under."""

    def with_tokens(self, tokens: RefreshedTokens) -> AccountCredentials:
        return replace(
            self,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token or self.refresh_token,
            token_expires_at=tokens.expires_at,
        )


@dataclass(frozen=True)
class RefreshedTokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None


@dataclass(frozen=True)
class PostMedia:
    """One image or video of a post, as the draft names it (issue 18): adapters fetch it
    through the egress guard and upload it the platform's way, with its alt text."""

    url: str
    alt_text: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class PostRequest:
    """One post on one platform. `created_at` is fixed when publishing starts, so every
    try (and a resumption after a crash) sends the same request. `lease`: the pending post's
    lease, confirmed immediately before each call that may create the post (`lease.py`)."""

    idempotency_key: str
    text: str
    created_at: datetime
    language: str | None = None
    """The post's language, a BCP-47 tag (the brand's), for platforms that record one."""
    has_media: bool = False
    """The post has images or a video, so a platform shows them rather than a link card."""
    media: tuple[PostMedia, ...] = ()
    """The post's images or video, in order, each with its alt text."""
    lease: HeldLease | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Published:
    external_id: str
    external_url: str
    published_at: datetime


class PublishFailure(Exception):
    """Publishing on a platform failed for good. `detail` never holds a token."""

    def __init__(self, reason: PublishFailureReason, detail: str) -> None:
        self.reason = reason
        self.detail = redact_text(detail)[:1000]
        super().__init__(f"{reason.value}: {self.detail}")


# Called with the account and its new tokens as soon as a refresh succeeded, so they are
# stored (re-encrypted) even if publishing then fails or the process dies.
TokensRefreshed = Callable[[AccountCredentials, RefreshedTokens], Awaitable[None]]


class PlatformAdapter(ABC):
    """Publishes on one platform."""

    @abstractmethod
    async def publish(
        self,
        account: AccountCredentials,
        request: PostRequest,
        *,
        resumed: bool,
        on_refreshed: TokensRefreshed,
    ) -> Published:
        """Publish once. `resumed`: an earlier try may have published it (after a crash),
        so ask the platform first. Raises PublishFailure, or LeaseLost when `request.lease`
        is not confirmed before a call that may create the post (nothing is sent then)."""

    async def text_refusal(self, platform: str, text: str, *, api_base_url: str | None) -> str | None:
        """Why `text` may not be posted on `platform` for an account on `api_base_url` (None when
        it may): the platform's own counting rule; an adapter whose limit is the account's server's
        (Mastodon) reads that server's."""
        return text_refusal(platform, text)

    refreshes_access_token: bool = False
    """The platform refreshes a long-lived access token itself (Instagram, Threads), so an account
    without a refresh token is refreshed too before its token expires."""

    @abstractmethod
    async def refresh(self, account: AccountCredentials) -> RefreshedTokens:
        """New tokens from the refresh token; raises PublishFailure(TOKEN_INVALID) when it cannot."""

    async def close(self) -> None:  # noqa: B027 (optional)
        """Release connections."""


# --- retry policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    deadline_s: float = 90.0
    """Total time one publication may take; the publishing lease must be longer."""
    max_wait_s: float = 5.0
    """The longest rate-limit reset waited for within the call; a later one defers it."""
    unannounced_limit_s: float = 900.0
    """How long 429s that never say when they end defer a call once the tries run out."""

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before try `attempt + 1` (attempt counts from 1): half of the exponential
        step fixed, half random, so replicas retrying together spread out."""
        step = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return step / 2 + (rng or random).uniform(0, step / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# --- per-account rate limits --------------------------------------------------------------------


class AccountRateLimiter:
    """One call at a time per account, at least `min_interval_s` apart, and none before a
    reset the platform announced (rate-limit headers or Retry-After).

    The process's view of limits every replica shares (`adapters/account_limits.py`): the
    publishing loop tells it the turns it reserved and the blocks other replicas learned
    (`turn_in`, `block`), and takes the blocks this process learned (`take_learned`)."""

    def __init__(self, min_interval_s: float = 0.0) -> None:
        self._min_interval_s = min_interval_s
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._next_at: dict[uuid.UUID, float] = {}
        self._blocks: dict[uuid.UUID, RateLimit] = {}
        self._learned: dict[uuid.UUID, RateLimit] = {}

    @property
    def min_interval_s(self) -> float:
        return self._min_interval_s

    def block(self, account_id: uuid.UUID, limit: RateLimit, *, learned: bool = True) -> None:
        """No call for the account before `limit.reset_at`; `learned` (from a platform's answer,
        not from the database) also keeps it for `take_learned`."""
        if account_id not in self._blocks or limit > self._blocks[account_id]:
            self._blocks[account_id] = limit
        if learned and (account_id not in self._learned or limit > self._learned[account_id]):
            self._learned[account_id] = limit

    def block_of(self, account_id: uuid.UUID) -> RateLimit | None:
        """The block holding the account now, if any."""
        limit = self._blocks.get(account_id)
        if limit is None or limit.reset_at <= datetime.now(UTC):
            return None
        return limit

    def take_learned(self) -> dict[uuid.UUID, RateLimit]:
        """The blocks learned from platforms since the last call, to share with the others."""
        learned, self._learned = self._learned, {}
        return learned

    def turn_in(self, account_id: uuid.UUID, seconds: float) -> None:
        """The account's next call is reserved `seconds` from now (a turn shared by replicas)."""
        self.blocked_for(account_id, seconds)

    def lock(self, account_id: uuid.UUID) -> asyncio.Lock:
        return self._locks.setdefault(account_id, asyncio.Lock())

    def wait_s(self, account_id: uuid.UUID) -> float:
        return max(0.0, self._next_at.get(account_id, 0.0) - time.monotonic())

    def called(self, account_id: uuid.UUID) -> None:
        at = time.monotonic() + self._min_interval_s
        self._next_at[account_id] = max(self._next_at.get(account_id, 0.0), at)

    def blocked_for(self, account_id: uuid.UUID, seconds: float) -> None:
        at = time.monotonic() + seconds
        self._next_at[account_id] = max(self._next_at.get(account_id, 0.0), at)
