"""The Mastodon adapter checks a text against the account's instance's own limit, read from its
/api/v2/instance (max_characters, characters_reserved_per_url) through the egress guard and
kept per instance for a while; an instance that does not say is taken to have Mastodon's
defaults and asked again sooner."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from hopcast_publisher.adapters.platforms.base import PublishFailure
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.mastodon_instance import (
    MAX_ANSWER_BYTES,
    InstanceLimitCache,
    InstanceLimits,
    limits_from,
)
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeMastodon, serve
from hopcast_shared.contract import PublishFailureReason

LINK = "https://example.com/" + "a" * 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def instance() -> AsyncIterator[tuple[FakeMastodon, str]]:
    fake = FakeMastodon(max_characters=300)
    async with serve(fake) as base_url:
        yield fake, base_url


def _adapter(cache: InstanceLimitCache | None = None, egress: EgressPolicy = LOOPBACK_EGRESS) -> MastodonAdapter:
    return MastodonAdapter(options=AdapterOptions(egress=egress), instances=cache)


def _instance_reads(fake: FakeMastodon) -> int:
    return fake.calls.count(("GET", "/api/v2/instance"))


async def test_a_text_over_a_smaller_instance_limit_is_refused_by_that_limit(
    instance: tuple[FakeMastodon, str],
) -> None:
    fake, base_url = instance
    adapter = _adapter()
    try:
        assert await adapter.text_refusal("MASTODON", "a" * 300, api_base_url=base_url) is None
        refusal = await adapter.text_refusal("MASTODON", "a" * 301, api_base_url=base_url)
    finally:
        await adapter.close()
    assert refusal == "the text breaks MASTODON's rule on 127.0.0.1 (its limit 300), not sent: " + (
        "301 characters over the limit of 300"
    )
    assert fake.creates() == 0


async def test_a_larger_instance_takes_a_text_the_default_limit_would_refuse() -> None:
    fake = FakeMastodon(max_characters=5000)
    text = "Long-form notes from the roastery. " * 40  # 1,400 characters
    async with serve(fake) as base_url:
        adapter = _adapter()
        try:
            assert await adapter.text_refusal("MASTODON", text, api_base_url=base_url) is None
        finally:
            await adapter.close()


async def test_urls_count_what_the_instance_reserves_for_them() -> None:
    text = "b" * 470 + " " + LINK  # 470 + 1 + a URL
    for reserved, refused in ((23, False), (40, True)):
        fake = FakeMastodon(max_characters=500, characters_reserved_per_url=reserved)
        async with serve(fake) as base_url:
            adapter = _adapter()
            try:
                refusal = await adapter.text_refusal("MASTODON", text, api_base_url=base_url)
            finally:
                await adapter.close()
        assert (refusal is not None) is refused, reserved


async def test_the_limit_is_read_once_per_instance_until_it_expires(instance: tuple[FakeMastodon, str]) -> None:
    fake, base_url = instance
    clock = Clock()
    adapter = _adapter(InstanceLimitCache(ttl_s=60, retry_s=5, clock=clock))
    try:
        for _ in range(3):
            await adapter.text_refusal("MASTODON", "hello", api_base_url=base_url)
        assert _instance_reads(fake) == 1
        fake.max_characters = 100
        clock.now += 61
        refusal = await adapter.text_refusal("MASTODON", "a" * 200, api_base_url=base_url + "/")
    finally:
        await adapter.close()
    assert _instance_reads(fake) == 2
    assert refusal is not None and "over the limit of 100" in refusal


async def test_an_instance_that_does_not_say_has_the_default_limit_and_is_asked_again_sooner() -> None:
    fake = FakeMastodon()
    fake.max_characters = 0  # an answer without a usable limit
    clock = Clock()
    async with serve(fake) as base_url:
        adapter = _adapter(InstanceLimitCache(ttl_s=60, retry_s=5, clock=clock))
        try:
            refusal = await adapter.text_refusal("MASTODON", "a" * 501, api_base_url=base_url)
            clock.now += 6
            await adapter.text_refusal("MASTODON", "a", api_base_url=base_url)
        finally:
            await adapter.close()
    assert refusal == "the text breaks MASTODON's rule, not sent: 501 characters over the limit of 500"
    assert _instance_reads(fake) == 2


async def test_an_instance_the_egress_guard_refuses_is_never_asked(instance: tuple[FakeMastodon, str]) -> None:
    fake, base_url = instance
    adapter = _adapter(egress=EgressPolicy())  # public https hosts only: not 127.0.0.1
    try:
        with pytest.raises(PublishFailure) as failure:
            await adapter.text_refusal("MASTODON", "hello", api_base_url=base_url)
    finally:
        await adapter.close()
    assert failure.value.reason is PublishFailureReason.EGRESS_REFUSED
    assert fake.calls == []


async def test_an_unreachable_or_oversized_answer_means_the_defaults() -> None:
    def app(request: httpx.Request) -> httpx.Response:
        if request.url.host == "huge.example":
            return httpx.Response(200, content=b" " * (MAX_ANSWER_BYTES + 1))
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(app)) as client:
        cache = InstanceLimitCache()
        assert await cache.limits(client, "https://huge.example") == InstanceLimits()
        assert await cache.limits(client, "https://down.example") == InstanceLimits()


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"max_characters": 1000, "characters_reserved_per_url": 30}, InstanceLimits(1000, 30, read=True)),
        ({"max_characters": 1000}, InstanceLimits(1000, 23, read=True)),
        ({"max_characters": "1000"}, None),
        ({"max_characters": True}, None),
        ({"max_characters": 0}, None),
        ({"max_characters": 10**9}, None),
        ({"max_characters": 500, "characters_reserved_per_url": -1}, None),
    ],
)
def test_limits_read_from_an_instance_answer(statuses: dict[str, object], expected: InstanceLimits | None) -> None:
    assert limits_from(json.loads(json.dumps({"configuration": {"statuses": statuses}}))) == expected
    assert limits_from({"configuration": []}) is None
    assert limits_from([]) is None
