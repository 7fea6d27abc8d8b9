"""The base of the real platform adapters: one guarded httpx client (`egress.py`), the retry
loop of `base.py`, and the hooks each platform fills in (create, find existing, refresh,
rate-limit headers, the error code of a refusal)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    AccountRateLimiter,
    PlatformAdapter,
    PostRequest,
    Published,
    PublishFailure,
    RefreshedTokens,
    RetryPolicy,
    TokensRefreshed,
    parse_retry_after,
)
from hopcast_publisher.adapters.platforms.egress import EgressPolicy, EgressRefused, platform_client
from hopcast_publisher.adapters.platforms.media import AdapterMedia, MediaOptions, UploadFailed
from hopcast_publisher.adapters.platforms.media_fetch import FetchedMedia
from hopcast_publisher.adapters.platforms.rate_limits import PublishDeferred, RateLimit
from hopcast_publisher.adapters.platforms.reauth import NeedsReauth
from hopcast_publisher.adapters.platforms.versions import UPGRADE_REQUIRED, version_retired
from hopcast_shared.contract import DeferralReason, PublishFailureReason, ReauthReason
from hopcast_shared.redact import REDACTED, redact_text

log = logging.getLogger(__name__)

# Sent, then no answer: the platform may have created the post.
_UNKNOWN_OUTCOME = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# Never reached the platform: safe to send again as is.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class LookupFailed(Exception):
    """Asking the platform whether a post exists got no clear answer: do not post, retry later."""

    def __init__(
        self, platform: str, response: httpx.Response | None = None, problem: str = "", *, maybe_created: bool = False
    ) -> None:
        self.response = response
        # The platform may hold the post already (a Meta container found PUBLISHED): ask first.
        self.maybe_created = maybe_created
        status = f" ({response.status_code})" if response is not None else ""
        super().__init__(f"could not ask {platform} whether the post exists{status}{problem}")


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    user_agent: str = "hopcast-publisher/0.1"

    @property
    def call_s(self) -> float:
        """The longest a create call may take (connect, then the answer): it is cut off there,
        so a lease confirmed for this long before the call outlasts it."""
        return self.connect_timeout_s + self.read_timeout_s


@dataclass(frozen=True)
class AdapterOptions:
    """What every HTTP adapter takes: the retry policy, timeouts, where calls may go (the
    egress policy: public https hosts only unless it says otherwise), the per-account limiter
    (shared by the adapters of one process), and optionally a seeded random."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    http: HttpSettings = field(default_factory=HttpSettings)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    limiter: AccountRateLimiter | None = None
    rng: random.Random | None = None
    media: MediaOptions | None = None
    """How media are fetched and their uploads remembered (a fetcher on `egress` and uploads
    kept in memory unless given)."""


@contextlib.contextmanager
def egress_refusals(platform: str) -> Iterator[None]:
    """A URL the egress guard refused, or one httpx will not parse (`0177.0.0.1`, which a resolver
    would read), as the platform's EGRESS_REFUSED failure: refused before a connection was
    opened, so nothing was sent and nothing is retried."""
    try:
        yield
    except EgressRefused as exc:
        raise PublishFailure(PublishFailureReason.EGRESS_REFUSED, f"{platform}: {exc.detail}") from None
    except httpx.InvalidURL:
        detail = f"{platform}: egress refused: not a valid URL"
        raise PublishFailure(PublishFailureReason.EGRESS_REFUSED, detail) from None


class HttpPlatformAdapter(AdapterMedia, PlatformAdapter):
    """A platform spoken to over HTTP. Subclasses say how to create a post, find one, refresh
    a token, and read the platform's answers."""

    platform: str = ""

    def __init__(self, options: AdapterOptions | None = None) -> None:
        options = options or AdapterOptions()
        self.policy = options.policy
        self.limiter = options.limiter or AccountRateLimiter()
        settings = options.http
        self.client = platform_client(
            self.platform,
            options.egress,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            user_agent=settings.user_agent,
        )
        self._rng = options.rng or random.Random()
        self.call_s = settings.call_s
        self.media = options.media or MediaOptions.default(options.egress)
        self._uploads = {}

    async def close(self) -> None:
        await self.client.aclose()
        await self.media.close()

    # --- what each platform fills in ---------------------------------------------------------

    @abstractmethod
    async def _create(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        """Send the create call."""

    @abstractmethod
    def _created(self, account: AccountCredentials, request: PostRequest, response: httpx.Response) -> Published:
        """The published post from a 2xx answer to the create call."""

    @abstractmethod
    async def _find_existing(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        """The post if the platform already has it (by idempotency key or text), else None."""

    @abstractmethod
    async def _refresh(self, account: AccountCredentials) -> RefreshedTokens:
        """Exchange the refresh token; raises PublishFailure(TOKEN_INVALID)."""

    def _token_expired(self, response: httpx.Response) -> bool:
        """Whether the answer says the access token is no longer valid (401 by default)."""
        return response.status_code == 401

    def _rate_limit(self, response: httpx.Response) -> RateLimit | None:
        """The reset before which the account may not call again, when the platform's
        rate-limit headers say a limit is used up (`rate_limits.py`)."""
        return None

    def _throttled(self, response: httpx.Response) -> bool:
        """Whether the answer refuses the call for a rate limit (429 by default; the Graph API
        answers 400 or 403 with its own codes)."""
        return response.status_code == 429

    def _unannounced_limit(self) -> RateLimit:
        """Until when 429s that never said when they end defer the call, once tries run out."""
        return RateLimit(now() + timedelta(seconds=self.policy.unannounced_limit_s))

    def _error_code(self, body: dict[str, object]) -> object:
        """The platform's own error code in a refusal's JSON body (its error field), if any."""
        return None

    api_version: str = ""
    """The platform API version this adapter calls, if the platform versions its API."""
    version_setting: str = ""
    """The setting that changes `api_version` (PUBLISHER_LINKEDIN_VERSION)."""

    def _version_retired(self, response: httpx.Response) -> bool:
        """Whether the answer says the platform no longer serves `api_version` (426 by default)."""
        return response.status_code == UPGRADE_REQUIRED

    def _retired_version(self, response: httpx.Response, account: AccountCredentials) -> PublishFailure | None:
        """API_VERSION_RETIRED, counted and logged, when the answer refuses our API version."""
        if not self._version_retired(response):
            return None
        answer = self._rejection(response, account)
        return version_retired(self.platform, self.api_version or "-", self.version_setting or "-", answer)

    def _rejection(self, response: httpx.Response, account: AccountCredentials) -> str:
        """What the platform said, for PostPublishFailed.detail: the status and the platform's
        error code, scrubbed; never the body, which reaches publisher.events and the HTTP reads."""
        code = error_code(self._error_code(json_or_empty(response)), account.access_token, account.refresh_token)
        return f"{self.platform} answered {response.status_code}" + (f" ({code})" if code else "")

    # --- the loop ----------------------------------------------------------------------------

    async def refresh(self, account: AccountCredentials) -> RefreshedTokens:
        if not account.refresh_token:
            raise PublishFailure(PublishFailureReason.TOKEN_INVALID, f"{self.platform}: no refresh token")
        try:
            with egress_refusals(self.platform):
                return await self._refresh(account)
        except httpx.HTTPError as exc:
            raise PublishFailure(
                PublishFailureReason.TOKEN_INVALID, f"{self.platform}: token refresh failed ({type(exc).__name__})"
            ) from None

    async def publish(
        self,
        account: AccountCredentials,
        request: PostRequest,
        *,
        resumed: bool,
        on_refreshed: TokensRefreshed,
    ) -> Published:
        async with self.limiter.lock(account.social_account_id):
            with egress_refusals(self.platform):
                return await self._publish(account, request, resumed=resumed, on_refreshed=on_refreshed)

    async def _publish(
        self,
        account: AccountCredentials,
        request: PostRequest,
        *,
        resumed: bool,
        on_refreshed: TokensRefreshed,
    ) -> Published:
        try:
            return await self._publish_tries(account, request, resumed=resumed, on_refreshed=on_refreshed)
        finally:
            self._forget_uploads(request)

    async def _publish_tries(
        self,
        account: AccountCredentials,
        request: PostRequest,
        *,
        resumed: bool,
        on_refreshed: TokensRefreshed,
    ) -> Published:
        policy = self.policy
        deadline = time.monotonic() + policy.deadline_s
        maybe_created = resumed  # an earlier try may have created it
        media: list[FetchedMedia] | None = None
        refreshed = False
        attempt = 0
        last_problem = "no attempt made"
        while True:
            attempt += 1
            limited = False
            await self._wait_turn(account, deadline, maybe_sent=maybe_created)
            try:
                if maybe_created:
                    existing = await self._find_existing(account, request)
                    if existing is not None:
                        log.info("%s post %s already exists; not posting again", self.platform, request.idempotency_key)
                        return existing
                if request.media and self.uploads_media:
                    if media is None:
                        # Every file fetched and checked against the platform's limits before
                        # any upload (once the post is known not to exist already).
                        media = await self._media_or_unknown(account, request, maybe_created)
                    # Uploaded once per account (remembered), before the lease is confirmed:
                    # an upload publishes nothing, and may take longer than one call.
                    await self._upload_media(account, request, media)
                if request.lease is not None:
                    await request.lease.confirm(self.call_s)  # raises LeaseLost: nothing is sent
                response = await self._create_within(account, request)
            except (LookupFailed, UploadFailed) as exc:
                if isinstance(exc, LookupFailed):
                    maybe_created = maybe_created or exc.maybe_created
                retired = self._retired_version(exc.response, account) if exc.response is not None else None
                if retired is not None:
                    raise retired from None
                if exc.response is not None and self._token_expired(exc.response):
                    account = await self._refreshed(account, refreshed, exc.response.status_code, on_refreshed)
                    refreshed = True
                    attempt -= 1
                    continue
                if isinstance(exc, UploadFailed) and exc.refused and exc.response is not None:
                    raise PublishFailure(
                        PublishFailureReason.MEDIA_REJECTED, f"{self._rejection(exc.response, account)} to an upload"
                    ) from None
                last_problem = str(exc)
                delay = policy.backoff(attempt, self._rng)
                if exc.response is not None and self._throttled(exc.response):
                    limited = True  # the lookup's own limit: wait for it, or defer, as for a post
                    lookup_limit = self._rate_limit(exc.response)
                    wait = self._until_reset(
                        account, exc.response, lookup_limit, deadline, last_problem, maybe_sent=maybe_created
                    )
                    delay = wait if wait is not None else delay
            except _NOT_SENT as exc:
                last_problem = f"could not reach {self.platform} ({type(exc).__name__})"
                delay = policy.backoff(attempt, self._rng)
            except (*_UNKNOWN_OUTCOME, httpx.TimeoutException) as exc:
                maybe_created = True
                last_problem = f"no answer from {self.platform} ({type(exc).__name__})"
                delay = policy.backoff(attempt, self._rng)
            else:
                self.limiter.called(account.social_account_id)
                limit = self._rate_limit(response)
                if limit is not None:
                    self.limiter.block(account.social_account_id, limit)
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return self._created(account, request, response)
                    except LookupFailed as exc:
                        # Created, probably, but the answer does not say what: look it up.
                        maybe_created = True
                        last_problem = str(exc)
                        delay = policy.backoff(attempt, self._rng)
                elif self._token_expired(response):
                    account = await self._refreshed(account, refreshed, status, on_refreshed)
                    refreshed = True
                    attempt -= 1  # a refresh is not a failed try
                    continue
                elif self._throttled(response):
                    last_problem = f"{self.platform} rate-limited the account ({status})"
                    limited = True
                    reset_in = self._until_reset(
                        account, response, limit, deadline, last_problem, maybe_sent=maybe_created
                    )
                    delay = reset_in if reset_in is not None else policy.backoff(attempt, self._rng)
                    self.limiter.blocked_for(account.social_account_id, delay)
                elif status >= 500:
                    maybe_created = True
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                    delay = retry_after if retry_after is not None else policy.backoff(attempt, self._rng)
                    last_problem = f"{self.platform} failed ({status})"
                else:
                    retired = self._retired_version(response, account)
                    if retired is not None:
                        raise retired
                    if maybe_created:
                        # A refusal after an unknown outcome may be the platform refusing a
                        # duplicate of what the earlier try created: look once more.
                        existing = await self._find_quietly(account, request)
                        if existing is not None:
                            return existing
                    raise PublishFailure(PublishFailureReason.PLATFORM_REJECTED, self._rejection(response, account))
            if attempt >= policy.max_attempts or time.monotonic() + delay > deadline:
                if limited:
                    # Refused for its limits every time, and never told until when.
                    unannounced = self._unannounced_limit()
                    self.limiter.block(account.social_account_id, unannounced)
                    raise PublishDeferred(
                        unannounced.reset_at,
                        unannounced.reason,
                        f"{last_problem} {attempt} times",
                        maybe_sent=maybe_created,
                    )
                raise PublishFailure(
                    PublishFailureReason.RETRIES_EXHAUSTED, f"{last_problem}; gave up after {attempt} tries"
                )
            log.info(
                "%s: %s; trying again in %.2fs (try %d of %d)",
                self.platform,
                last_problem,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            await asyncio.sleep(delay)

    async def _create_within(self, account: AccountCredentials, request: PostRequest) -> httpx.Response:
        """The create call, cut off at `call_s` whatever httpx's per-read timeouts would let
        through (the lease confirmed before it counts on that bound): an unknown outcome then."""
        try:
            async with asyncio.timeout(self.call_s):
                return await self._create(account, request)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer from {self.platform} within {self.call_s:.1f}s") from None

    async def _refreshed(
        self, account: AccountCredentials, already: bool, status: int, on_refreshed: TokensRefreshed
    ) -> AccountCredentials:
        """The account with fresh tokens (stored through `on_refreshed`), or TOKEN_INVALID."""
        if already or not account.refresh_token:
            # Refused after a refresh, or with nothing to refresh: only its owner can fix it.
            raise NeedsReauth(
                ReauthReason.UNAUTHORIZED,
                f"{self.platform} refused the token ({status})"
                + (" after a refresh" if already else ", and there is no refresh token"),
            )
        tokens = await self.refresh(account)
        account = account.with_tokens(tokens)
        await on_refreshed(account, tokens)
        return account

    async def _find_quietly(self, account: AccountCredentials, request: PostRequest) -> Published | None:
        try:
            return await self._find_existing(account, request)
        except (LookupFailed, httpx.HTTPError):
            log.warning("%s: could not check whether %s exists", self.platform, request.idempotency_key)
            return None

    def _until_reset(
        self,
        account: AccountCredentials,
        response: httpx.Response,
        limit: RateLimit | None,
        deadline: float,
        problem: str,
        *,
        maybe_sent: bool,
    ) -> float | None:
        """Seconds to wait after a 429 (Retry-After, else the used-up limit's reset), None when
        the answer does not say; raises PublishDeferred when that is further than may be
        waited within the call (`max_wait_s`, the deadline)."""
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        reason = limit.reason if limit is not None else DeferralReason.RATE_LIMITED
        if retry_after is not None:
            limit = RateLimit(now() + timedelta(seconds=retry_after), reason)
        if limit is None:
            return None
        wait = max(0.0, (limit.reset_at - now()).total_seconds())
        if wait > self.policy.max_wait_s or time.monotonic() + wait > deadline:
            self.limiter.block(account.social_account_id, limit)
            raise PublishDeferred(limit.reset_at, limit.reason, problem, maybe_sent=maybe_sent)
        return wait

    async def _wait_turn(self, account: AccountCredentials, deadline: float, *, maybe_sent: bool) -> None:
        """Wait for the account's turn; a block past `max_wait_s` (or the deadline), or a
        turn past the deadline, defers the call instead."""
        block = self.limiter.block_of(account.social_account_id)
        if block is not None:
            wait = (block.reset_at - now()).total_seconds()
            if wait > self.policy.max_wait_s or time.monotonic() + wait > deadline:
                detail = f"{self.platform}: the account's limit holds its calls until the reset"
                raise PublishDeferred(block.reset_at, block.reason, detail, maybe_sent=maybe_sent)
            await asyncio.sleep(wait)
        wait = self.limiter.wait_s(account.social_account_id)
        if wait <= 0:
            return
        if time.monotonic() + wait > deadline:
            detail = f"{self.platform}: the account's turn is {wait:.0f}s away, past the deadline"
            retry_at = now() + timedelta(seconds=wait)
            raise PublishDeferred(retry_at, DeferralReason.RATE_LIMITED, detail, maybe_sent=maybe_sent)
        await asyncio.sleep(wait)


_CODE_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:'-]+")
_MAX_CODE = 80


def error_code(value: object, *secrets: str | None) -> str | None:
    """A platform's error code, safe to publish: a string or number, with the account's own
    tokens (`secrets`) and anything token-like masked, other characters than letters, digits
    and a little punctuation replaced, and short."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = " ".join(_CODE_UNSAFE.sub(" ", redact_text(text)).split())
    if len(text) > _MAX_CODE:
        text = text[: _MAX_CODE - 1].rstrip() + "…"
    return text or None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def json_or_empty(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def items(value: object) -> list[object]:
    """A JSON array from an answer, or nothing when it is something else."""
    return list(value) if isinstance(value, list) else []


def now() -> datetime:
    return datetime.now(UTC)
