"""Fixtures of the Meta adapters' tests: each fake (`hopcast_publisher.testing_meta`) served on
loopback, a request maker, and `meta(platform, fake, base_url, ...)`: an adapter pointed at the
fake (fast retries, short timeouts, media hosts judged by `media_resolver`) and its account."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostMedia, PostRequest, RetryPolicy
from hopcast_publisher.adapters.platforms.facebook import FacebookAdapter
from hopcast_publisher.adapters.platforms.graph import GraphAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpSettings
from hopcast_publisher.adapters.platforms.instagram import InstagramAdapter
from hopcast_publisher.adapters.platforms.threads import ThreadsAdapter
from hopcast_publisher.testing import serve
from hopcast_publisher.testing_meta import MEDIA_EGRESS, FakeFacebook, FakeGraph, FakeInstagram, FakeThreads

READ_TIMEOUT_S = 0.3
_KINDS: dict[str, tuple[type[GraphAdapter], str]] = {
    "FACEBOOK": (FacebookAdapter, "v27.0"),
    "INSTAGRAM": (InstagramAdapter, "v27.0"),
    "THREADS": (ThreadsAdapter, "v1.0"),
}

Meta = Callable[..., tuple[GraphAdapter, AccountCredentials]]


@pytest.fixture
def post() -> Callable[..., PostRequest]:
    def make(text: str = "Spring menu is out #coffee", media: Sequence[PostMedia] = ()) -> PostRequest:
        return PostRequest(f"hopcast-{uuid.uuid4()}", text, datetime.now(UTC), media=tuple(media))

    return make


@pytest.fixture
def meta() -> Meta:
    def make(
        platform: str,
        fake: FakeGraph,
        base_url: str,
        *,
        version: str | None = None,
        attempts: int = 4,
        poll_budget_s: float = 1.0,
        refresh_token: str | None = None,
    ) -> tuple[GraphAdapter, AccountCredentials]:
        options = AdapterOptions(
            policy=RetryPolicy(max_attempts=attempts, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10.0),
            http=HttpSettings(connect_timeout_s=1.0, read_timeout_s=READ_TIMEOUT_S),
            egress=MEDIA_EGRESS,
            rng=random.Random(5),
        )
        kind, current = _KINDS[platform]
        adapter = kind(
            api_url=base_url,
            version=version or current,
            options=options,
            poll_interval_s=0.02,
            poll_budget_s=poll_budget_s,
        )
        owner = fake.page_id if isinstance(fake, FakeFacebook) else getattr(fake, "user_id", None)
        account = AccountCredentials(uuid.uuid4(), platform, "@hopcast", owner, None, "good-access", refresh_token)
        return adapter, account

    return make


@pytest.fixture
def no_refresh() -> Callable[..., object]:
    async def refused(*_: object) -> None:
        raise AssertionError("no token refresh expected")

    return refused


@pytest.fixture
async def instagram() -> AsyncIterator[tuple[FakeInstagram, str]]:
    fake = FakeInstagram()
    async with serve(fake) as base_url:
        yield fake, base_url


@pytest.fixture
async def threads() -> AsyncIterator[tuple[FakeThreads, str]]:
    fake = FakeThreads()
    async with serve(fake) as base_url:
        yield fake, base_url


@pytest.fixture
async def facebook() -> AsyncIterator[tuple[FakeFacebook, str]]:
    fake = FakeFacebook()
    async with serve(fake) as base_url:
        yield fake, base_url
