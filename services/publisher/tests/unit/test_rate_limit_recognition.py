"""Each platform's rate-limit answers as its documentation gives them, read into the reset
before which the account may not call again; and the adapters putting a post off
(PublishDeferred) instead of failing it or retrying blindly, against the fake servers."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    AccountRateLimiter,
    PostRequest,
    RefreshedTokens,
    RetryPolicy,
)
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.rate_limits import (
    PublishDeferred,
    RateLimit,
    bluesky_rate_limit,
    mastodon_rate_limit,
    next_utc_midnight,
    x_rate_limit,
)
from hopcast_publisher.adapters.platforms.x import XAdapter
from hopcast_publisher.domain.deferral import Deferral, within_max_deferral
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeLinkedIn, FakeX, Fault, serve
from hopcast_shared.contract import DeferralReason

NOW = int(time.time())
RATE_LIMITED, DAILY_CAP = DeferralReason.RATE_LIMITED, DeferralReason.DAILY_CAP


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-rate-limit-remaining": "12", "x-rate-limit-reset": str(NOW + 60)}, None),
        ({"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(NOW + 60)}, RateLimit(at(NOW + 60))),
        (
            {"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(NOW + 9000)},
            RateLimit(at(NOW + 9000), DAILY_CAP),
        ),
        (
            {"x-app-limit-24hour-remaining": "0", "x-app-limit-24hour-reset": str(NOW + 4000)},
            RateLimit(at(NOW + 4000), DAILY_CAP),
        ),
        (  # the window and the daily cap both used up: the later reset holds
            {
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(NOW + 900),
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(NOW + 9000),
            },
            RateLimit(at(NOW + 9000), DAILY_CAP),
        ),
        ({"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": "soon"}, None),
    ],
)
def test_x_windows_and_daily_caps(headers: dict[str, str], expected: RateLimit | None) -> None:
    assert x_rate_limit(headers) == expected


def test_mastodon_reset_is_an_iso_time_and_bluesky_an_epoch() -> None:
    assert mastodon_rate_limit(
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "2027-03-14T07:05:00.019685Z"}
    ) == RateLimit(datetime(2027, 3, 14, 7, 5, 0, 19685, tzinfo=UTC))
    assert mastodon_rate_limit({"x-ratelimit-remaining": "1", "x-ratelimit-reset": "2027-03-14T07:05:00Z"}) is None
    assert bluesky_rate_limit({"ratelimit-remaining": "0", "ratelimit-reset": str(NOW + 30)}) == RateLimit(at(NOW + 30))
    assert bluesky_rate_limit({"ratelimit-limit": "5000", "ratelimit-remaining": "4999"}) is None


def test_linkedin_daily_limits_reset_at_midnight_utc() -> None:
    assert next_utc_midnight(datetime(2027, 3, 14, 23, 59, tzinfo=UTC)) == datetime(2027, 3, 15, tzinfo=UTC)
    assert next_utc_midnight(datetime(2027, 3, 14, 0, 0, tzinfo=UTC)) == datetime(2027, 3, 15, tzinfo=UTC)


def test_the_longest_deferral_counts_from_the_first_try() -> None:
    first = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    assert within_max_deferral(first, first + timedelta(hours=24), 86_400)
    assert not within_max_deferral(first, first + timedelta(hours=24, seconds=1), 86_400)
    assert Deferral(first, DAILY_CAP, "x").reason is DAILY_CAP


def test_the_limiter_keeps_the_latest_block_and_hands_over_only_learned_ones() -> None:
    limiter = AccountRateLimiter()
    account = uuid.uuid4()
    soon, later = (
        RateLimit(datetime.now(UTC) + timedelta(minutes=5)),
        RateLimit(datetime.now(UTC) + timedelta(hours=5), DAILY_CAP),
    )
    limiter.block(account, later, learned=False)  # from the database
    limiter.block(account, soon)  # from a platform, but sooner: the later one holds
    assert limiter.block_of(account) == later
    assert limiter.take_learned() == {account: soon}
    assert limiter.take_learned() == {}
    passed = uuid.uuid4()
    limiter.block(passed, RateLimit(datetime.now(UTC) - timedelta(seconds=1)))
    assert limiter.block_of(passed) is None  # its reset is behind us


OPTIONS = AdapterOptions(
    policy=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, deadline_s=10.0, max_wait_s=1.0),
    http=HttpSettings(connect_timeout_s=1.0, read_timeout_s=1.0),
    egress=LOOPBACK_EGRESS,
    rng=random.Random(7),
)


async def no_refresh(account: AccountCredentials, tokens: RefreshedTokens) -> None:
    raise AssertionError("no refresh expected")


def account(platform: str, external: str | None) -> AccountCredentials:
    return AccountCredentials(uuid.uuid4(), platform, "@hopcast", external, None, "good-access", "good-refresh")


def request() -> PostRequest:
    key = f"hopcast-{uuid.uuid4()}-x"
    return PostRequest(key, f"Fresh roast {key[-12:]}", datetime.now(UTC))


@pytest.fixture
async def x() -> AsyncIterator[tuple[FakeX, XAdapter]]:
    fake = FakeX()
    async with serve(fake) as base_url:
        adapter = XAdapter(api_url=base_url, client_id="app", options=OPTIONS)
        yield fake, adapter
        await adapter.close()


async def test_x_user_cap_defers_until_its_reset_without_retrying(x: tuple[FakeX, XAdapter]) -> None:
    fake, adapter = x
    reset = int(time.time()) + 5 * 3600  # read now: a slow run can start this test long after import
    fake.fail_next(Fault(429, {"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(reset)}))
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(account("TWITTER", FakeX.user_id), request(), resumed=False, on_refreshed=no_refresh)
    assert (deferred.value.retry_at, deferred.value.reason) == (at(reset), DAILY_CAP)
    assert fake.creates() == 1 and fake.posts == []


async def test_a_used_up_window_on_a_success_puts_off_the_accounts_next_post(x: tuple[FakeX, XAdapter]) -> None:
    fake, adapter = x
    who = account("TWITTER", FakeX.user_id)
    reset = int(time.time()) + 900  # read now: a slow run can start this test long after import
    original = fake.create

    async def last_of_window(req: object) -> tuple[int, dict[str, str], object]:
        status, _, body = await original(req)  # type: ignore[arg-type]
        return status, {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}, body

    fake.create = last_of_window  # type: ignore[method-assign]
    await adapter.publish(who, request(), resumed=False, on_refreshed=no_refresh)
    with pytest.raises(PublishDeferred) as deferred:
        await adapter.publish(who, request(), resumed=False, on_refreshed=no_refresh)
    assert (deferred.value.retry_at, deferred.value.reason) == (at(reset), RATE_LIMITED)
    assert fake.creates() == 1 and len(fake.posts) == 1  # the second post never reached X
    assert adapter.limiter.take_learned() == {who.social_account_id: RateLimit(at(reset))}


async def test_linkedin_429s_without_an_end_defer_until_midnight_utc() -> None:
    fake = FakeLinkedIn()
    async with serve(fake) as base_url:
        adapter = LinkedInAdapter(
            api_url=base_url,
            oauth_url=base_url,
            client_id="app",
            client_secret="secret",  # noqa: S106
            options=OPTIONS,
        )
        fake.fail_next(*(Fault(429) for _ in range(3)))
        with pytest.raises(PublishDeferred) as deferred:
            await adapter.publish(
                account("LINKEDIN", "urn:li:person:abc123"), request(), resumed=False, on_refreshed=no_refresh
            )
        assert deferred.value.reason is DAILY_CAP
        assert deferred.value.retry_at == next_utc_midnight(datetime.now(UTC))
        assert fake.creates() == 3 and fake.posts == []
        await adapter.close()
