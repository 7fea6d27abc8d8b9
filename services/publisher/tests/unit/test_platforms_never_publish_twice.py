"""The real platform adapters against local fake servers (127.0.0.1) that answer as each
platform documents: 429 with Retry-After, 5xx, timeouts with an unknown outcome, 4xx
rejections, expired tokens. Whatever happens, a post is never published twice."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    AccountRateLimiter,
    PlatformAdapter,
    PostRequest,
    PublishFailure,
    RefreshedTokens,
    RetryPolicy,
    parse_retry_after,
)
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter, tid_for
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter, little_text
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.testing import (
    LOOPBACK_EGRESS,
    FakeBluesky,
    FakeLinkedIn,
    FakeMastodon,
    FakePlatform,
    FakeX,
    Fault,
    serve,
)
from hopcast_shared.contract import PublishFailureReason

POLICY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10.0)
TIMEOUT_S = 0.3


def _options(limiter: AccountRateLimiter | None = None) -> AdapterOptions:
    return AdapterOptions(
        policy=POLICY,
        http=HttpSettings(connect_timeout_s=1.0, read_timeout_s=TIMEOUT_S),
        egress=LOOPBACK_EGRESS,
        limiter=limiter,
        rng=random.Random(7),
    )


@dataclass
class Platform:
    name: str
    fake: FakePlatform
    adapter: PlatformAdapter
    base_url: str

    def account(self, access: str = "good-access", refresh: str | None = "good-refresh") -> AccountCredentials:
        # A LinkedIn page: its posts can be listed (a member's cannot: test_lost_responses.py).
        external = {"BLUESKY": "did:plc:hopcast", "TWITTER": FakeX.user_id, "LINKEDIN": "urn:li:organization:2414183"}
        return AccountCredentials(
            social_account_id=uuid.uuid4(),
            platform=self.name,
            handle="@hopcast",
            external_account_id=external.get(self.name),
            api_base_url=self.base_url if self.name in ("BLUESKY", "MASTODON") else None,
            access_token=access,
            refresh_token=refresh,
        )


def _build(name: str, base_url: str, limiter: AccountRateLimiter | None = None) -> PlatformAdapter:
    options = _options(limiter)
    if name == "BLUESKY":
        return BlueskyAdapter(pds_url=base_url, options=options)
    if name == "MASTODON":
        return MastodonAdapter(client_id="app", client_secret="secret", options=options)  # noqa: S106
    if name == "TWITTER":
        return XAdapter(api_url=base_url, client_id="app", options=options)
    return LinkedInAdapter(
        api_url=base_url,
        oauth_url=base_url,
        client_id="app",
        client_secret="secret",  # noqa: S106
        options=options,
    )


FAKES: dict[str, Callable[[], FakePlatform]] = {
    "BLUESKY": FakeBluesky,
    "MASTODON": FakeMastodon,
    "TWITTER": FakeX,
    "LINKEDIN": FakeLinkedIn,
}


class Swappable:
    """One server for the module; each test puts its own fresh fake behind it."""

    def __init__(self) -> None:
        self.app: FakePlatform | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[Swappable, str]]:
    app = Swappable()
    async with serve(app) as base_url:
        yield app, base_url


@pytest.fixture(params=list(FAKES))
async def platform(request: pytest.FixtureRequest, server: tuple[Swappable, str]) -> AsyncIterator[Platform]:
    app, base_url = server
    fake = FAKES[request.param]()
    app.app = fake
    adapter = _build(request.param, base_url)
    yield Platform(request.param, fake, adapter, base_url)
    await adapter.close()


def post_request(text: str | None = None) -> PostRequest:
    key = f"hopcast-{uuid.uuid4()}-x"
    return PostRequest(key, text or f"Fresh roast, batch {key[-12:]} #coffee", datetime.now(UTC))


class Refreshes:
    def __init__(self) -> None:
        self.stored: list[tuple[AccountCredentials, RefreshedTokens]] = []

    async def __call__(self, account: AccountCredentials, tokens: RefreshedTokens) -> None:
        self.stored.append((account, tokens))


async def publish(p: Platform, request: PostRequest, *, resumed: bool = False, **account: Any) -> Any:
    return await p.adapter.publish(p.account(**account), request, resumed=resumed, on_refreshed=Refreshes())


async def test_publishes_once(platform: Platform) -> None:
    published = await publish(platform, post_request())
    assert len(platform.fake.posts) == 1
    assert platform.fake.creates() == 1
    assert published.external_id and published.external_url.startswith("https://")


async def test_429_waits_for_retry_after_and_posts_once(platform: Platform) -> None:
    platform.fake.fail_next(Fault(429, {"retry-after": "0"}), Fault(429, {"retry-after": "0"}))
    await publish(platform, post_request())
    assert platform.fake.creates() == 3
    assert len(platform.fake.posts) == 1


async def test_5xx_is_retried_with_backoff_and_posts_once(platform: Platform) -> None:
    platform.fake.fail_next(Fault(503), Fault(502))
    await publish(platform, post_request())
    assert len(platform.fake.posts) == 1


async def test_a_timeout_after_the_post_was_made_is_not_a_double_post(platform: Platform) -> None:
    platform.fake.fail_next(Fault(delay_s=TIMEOUT_S * 3, create=True))
    published = await publish(platform, post_request())
    assert len(platform.fake.posts) == 1  # found by idempotency key or text, not posted again
    assert published.external_id


async def test_a_timeout_before_the_post_was_made_posts_it_on_the_retry(platform: Platform) -> None:
    platform.fake.fail_next(Fault(delay_s=TIMEOUT_S * 3, create=False))
    await publish(platform, post_request())
    assert len(platform.fake.posts) == 1


async def test_a_4xx_is_a_rejection_and_never_retried(platform: Platform) -> None:
    status = 422 if platform.name != "BLUESKY" else 400
    platform.fake.fail_next(Fault(status, body={"error": "InvalidRequest"}))
    with pytest.raises(PublishFailure) as failure:
        await publish(platform, post_request())
    assert failure.value.reason is PublishFailureReason.PLATFORM_REJECTED
    assert platform.fake.creates() == 1
    assert platform.fake.posts == []
    assert failure.value.detail.startswith(f"{platform.name} answered {status}")


# What each platform's error field looks like, with what answered around it: internal data,
# the account's own token, a URL with a secret. The detail keeps the status and the code.
_HOSTILE = "root:x:0:0 internal-db.corp:5432 good-access https://u:pw@internal/?token=t0ps3cret"
_ERROR_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "BLUESKY": ({"error": "InvalidRequest", "message": _HOSTILE}, "(InvalidRequest)"),
    "MASTODON": ({"error": "Validation failed", "details": _HOSTILE}, "(Validation failed)"),
    "TWITTER": ({"errors": [{"code": 187, "message": _HOSTILE}], "detail": _HOSTILE}, "(187)"),
    "LINKEDIN": (
        {"status": 422, "code": "UNPROCESSABLE_ENTITY", "serviceErrorCode": 100, "message": _HOSTILE},
        "(UNPROCESSABLE_ENTITY 100)",
    ),
}


async def test_a_rejection_detail_is_the_status_and_the_error_code_never_the_body(platform: Platform) -> None:
    body, code = _ERROR_BODIES[platform.name]
    platform.fake.fail_next(Fault(422, body=body))
    with pytest.raises(PublishFailure) as failure:
        await publish(platform, post_request())
    assert failure.value.detail == f"{platform.name} answered 422 {code}"


async def test_an_error_field_that_echoes_a_token_is_scrubbed(platform: Platform) -> None:
    field = {
        "BLUESKY": "error",
        "MASTODON": "error",
        "TWITTER": "title",
        "LINKEDIN": "code",
    }[platform.name]
    platform.fake.fail_next(Fault(400, body={field: "bad token good-access <script>" + "x" * 500}))
    with pytest.raises(PublishFailure) as failure:
        await publish(platform, post_request())
    detail = failure.value.detail
    assert "good-access" not in detail and "<" not in detail and "script>" not in detail
    assert len(detail) < 120


async def test_retries_run_out(platform: Platform) -> None:
    platform.fake.fail_next(*[Fault(500) for _ in range(POLICY.max_attempts)])
    with pytest.raises(PublishFailure) as failure:
        await publish(platform, post_request())
    assert failure.value.reason is PublishFailureReason.RETRIES_EXHAUSTED
    assert platform.fake.creates() == POLICY.max_attempts
    assert platform.fake.posts == []


async def test_an_expired_token_is_refreshed_stored_and_used(platform: Platform) -> None:
    refreshes = Refreshes()
    account = platform.account(access="expired-access")
    await platform.adapter.publish(account, post_request(), resumed=False, on_refreshed=refreshes)
    assert len(platform.fake.posts) == 1
    assert len(refreshes.stored) == 1
    stored_account, tokens = refreshes.stored[0]
    assert tokens.access_token == "fresh-access" == stored_account.access_token  # noqa: S105


async def test_an_expired_token_without_a_working_refresh_is_token_invalid(platform: Platform) -> None:
    with pytest.raises(PublishFailure) as failure:
        await publish(platform, post_request(), access="expired-access", refresh="revoked-refresh")
    assert failure.value.reason is PublishFailureReason.TOKEN_INVALID
    assert platform.fake.posts == []
    with pytest.raises(PublishFailure) as failure:
        await publish(platform, post_request(), access="expired-access", refresh=None)
    assert failure.value.reason is PublishFailureReason.TOKEN_INVALID
    assert "good-access" not in failure.value.detail and "expired-access" not in failure.value.detail


async def test_a_resumed_publication_that_already_went_out_is_not_posted_again(platform: Platform) -> None:
    request = post_request()
    first = await publish(platform, request)
    again = await publish(platform, request, resumed=True)
    assert len(platform.fake.posts) == 1
    assert again.external_id == first.external_id


async def test_rate_limit_headers_hold_the_next_call_of_that_account() -> None:
    fake = FakeX()
    async with serve(fake) as base_url:
        limiter = AccountRateLimiter()
        adapter = _build("TWITTER", base_url, limiter)
        p = Platform("TWITTER", fake, adapter, base_url)
        account = p.account()
        reset_in = 2
        fake.fail_next(Fault(429, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(_now()) + reset_in)}))
        started = _now()
        await adapter.publish(account, post_request(), resumed=False, on_refreshed=Refreshes())
        assert _now() - started >= reset_in - 1.05  # waited for the announced reset, not the short backoff
        assert len(fake.posts) == 1
        await adapter.close()


def _now() -> float:
    import time

    return time.time()


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert (
        parse_retry_after("Wed, 21 Oct 2037 07:28:00 GMT", now=datetime(2037, 10, 21, 7, 27, tzinfo=UTC).timestamp())
        == 60.0
    )


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=8.0)
    rng = random.Random(1)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = {policy.backoff(attempt, rng) for _ in range(20)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered


def test_bluesky_record_keys_are_valid_stable_tids() -> None:
    at = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    tid = tid_for(at, "hopcast-a-bluesky")
    assert tid == tid_for(at, "hopcast-a-bluesky")
    assert tid != tid_for(at, "hopcast-b-bluesky")
    assert len(tid) == 13 and tid[0] in "234567abcdefghij"
    assert set(tid) <= set("234567abcdefghijklmnopqrstuvwxyz")
    assert tid_for(at, "k") < tid_for(at.replace(minute=1), "k")  # sortable by time


def test_linkedin_little_text_escapes_reserved_characters() -> None:
    assert little_text("Fresh (roast) #coffee @you") == r"Fresh \(roast\) \#coffee \@you"
