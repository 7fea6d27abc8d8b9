"""Exactly once on every platform when the answer to a successful create call is lost: each
live adapter against its fake server, which makes the post and then never answers in time.
The adapter must find its own post (X gives the text back with t.co links and & < >
escaped), or say it cannot know (a personal LinkedIn account may not list its posts), and
never post a second time. A call whose lease is gone is not sent at all."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from hopcast_publisher.adapters.platforms.base import (
    AccountCredentials,
    PostRequest,
    Published,
    PublishFailure,
    RefreshedTokens,
    RetryPolicy,
)
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions, HttpPlatformAdapter, HttpSettings
from hopcast_publisher.adapters.platforms.lease import LeaseLost
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.adapters.platforms.x import XAdapter, same_links, same_post_text
from hopcast_publisher.testing import (
    LOOPBACK_EGRESS,
    FakeBluesky,
    FakeLinkedIn,
    FakeMastodon,
    FakePlatform,
    FakeX,
    Fault,
    serve,
    x_rendered,
)
from hopcast_shared.contract import PublishFailureReason

READ_TIMEOUT_S = 0.3
LOST = Fault(delay_s=READ_TIMEOUT_S * 4, create=True)  # made, then no answer before the timeout
# What X changes in a text: two URLs (one without a scheme), & < > and a composed character.
TEXT = "Beans & <brews> at https://example.com/menu?a=1&b=2 and hopcast.io — cafe\u0301 #coffee"
PAGE = "urn:li:organization:2414183"
MEMBER = "urn:li:person:abc123"


def adapter_for(platform: str, base_url: str) -> HttpPlatformAdapter:
    options = AdapterOptions(
        policy=RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10.0),
        http=HttpSettings(connect_timeout_s=1.0, read_timeout_s=READ_TIMEOUT_S),
        egress=LOOPBACK_EGRESS,
        rng=random.Random(3),
    )
    if platform == "BLUESKY":
        return BlueskyAdapter(pds_url=base_url, options=options)
    if platform == "MASTODON":
        return MastodonAdapter(client_id="app", client_secret="secret", options=options)  # noqa: S106
    if platform == "TWITTER":
        return XAdapter(api_url=base_url, client_id="app", options=options)
    return LinkedInAdapter(api_url=base_url, oauth_url=base_url, client_id="app", options=options)


def account_on(platform: str, base_url: str, external: str | None = None) -> AccountCredentials:
    externals = {"BLUESKY": "did:plc:hopcast", "TWITTER": FakeX.user_id, "LINKEDIN": PAGE}
    return AccountCredentials(
        uuid.uuid4(),
        platform,
        "@hopcast",
        external or externals.get(platform),
        base_url if platform in ("BLUESKY", "MASTODON") else None,
        "good-access",
        "good-refresh",
    )


async def nothing_refreshed(account: AccountCredentials, tokens: RefreshedTokens) -> None:
    raise AssertionError("no token should need a refresh here")


class OnFake:
    """One fake platform served on loopback, with the live adapter pointed at it."""

    def __init__(self, platform: str, fake: FakePlatform, base_url: str) -> None:
        self.platform, self.fake, self.base_url = platform, fake, base_url
        self.adapter = adapter_for(platform, base_url)

    async def publish(self, request: PostRequest, *, resumed: bool = False, external: str | None = None) -> Published:
        account = account_on(self.platform, self.base_url, external)
        return await self.adapter.publish(account, request, resumed=resumed, on_refreshed=nothing_refreshed)


@pytest.fixture
async def on_fake(request: pytest.FixtureRequest) -> AsyncIterator[OnFake]:
    platform: str = request.param
    fake = {"BLUESKY": FakeBluesky, "MASTODON": FakeMastodon, "TWITTER": FakeX, "LINKEDIN": FakeLinkedIn}[platform]()
    async with serve(fake) as base_url:
        served = OnFake(platform, fake, base_url)
        yield served
        await served.adapter.close()


def request_of(text: str = TEXT) -> PostRequest:
    return PostRequest(f"hopcast-{uuid.uuid4()}", text, datetime.now(UTC))


def external_ids(fake: FakePlatform) -> list[str]:
    return [str(p["id"]) if "id" in p else str(p["uri"]) for p in fake.posts]  # a PDS record has only its uri


ALL = pytest.mark.parametrize("on_fake", ["BLUESKY", "MASTODON", "TWITTER", "LINKEDIN"], indirect=True)


@ALL
async def test_a_lost_answer_to_a_successful_create_leaves_exactly_one_post(on_fake: OnFake) -> None:
    on_fake.fake.fail_next(LOST)
    published = await on_fake.publish(request_of())
    assert len(on_fake.fake.posts) == 1
    assert external_ids(on_fake.fake) == [published.external_id]  # found as its own, not made again


@ALL
async def test_a_post_made_before_a_crash_is_found_when_resumed_and_not_made_again(on_fake: OnFake) -> None:
    request = request_of()
    on_fake.fake.fail_next(LOST)
    first = await on_fake.publish(request)
    creates = on_fake.fake.creates()
    again = await on_fake.publish(request, resumed=True)
    assert again.external_id == first.external_id
    assert len(on_fake.fake.posts) == 1
    if on_fake.platform != "MASTODON":  # Mastodon's question is the create call with its key
        assert on_fake.fake.creates() == creates


@pytest.mark.parametrize("on_fake", ["TWITTER"], indirect=True)
async def test_x_gives_the_text_back_wrapped_and_escaped_and_the_lookup_still_finds_it(on_fake: OnFake) -> None:
    on_fake.fake.fail_next(LOST)
    await on_fake.publish(request_of())
    [post] = on_fake.fake.posts
    assert post["text"] != TEXT and "https://t.co/" in post["text"] and "&amp;" in post["text"]
    assert "&lt;brews&gt;" in post["text"] and "example.com" not in post["text"]
    assert on_fake.fake.creates() == 1


@pytest.mark.parametrize("on_fake", ["LINKEDIN"], indirect=True)
async def test_a_personal_linkedin_account_that_cannot_list_its_posts_reports_an_unknown_outcome(
    on_fake: OnFake,
) -> None:
    on_fake.fake.fail_next(LOST)
    with pytest.raises(PublishFailure) as failure:
        await on_fake.publish(request_of(), external=MEMBER)
    assert failure.value.reason is PublishFailureReason.OUTCOME_UNKNOWN
    assert "r_member_social" in failure.value.detail and "not posted again" in failure.value.detail
    assert len(on_fake.fake.posts) == 1 and on_fake.fake.creates() == 1  # not retried blindly


@pytest.mark.parametrize("on_fake", ["LINKEDIN"], indirect=True)
async def test_a_member_token_with_r_member_social_finds_its_post(on_fake: OnFake) -> None:
    assert isinstance(on_fake.fake, FakeLinkedIn)
    on_fake.fake.member_readers.add("good-access")
    on_fake.fake.fail_next(LOST)
    published = await on_fake.publish(request_of(), external=MEMBER)
    assert external_ids(on_fake.fake) == [published.external_id]


class Gone:
    """A lease that is no longer held."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def confirm(self, call_s: float) -> None:
        self.asked.append(call_s)
        raise LeaseLost("gone")


@ALL
async def test_a_call_whose_lease_is_gone_is_not_sent(on_fake: OnFake) -> None:
    lease = Gone()
    request = PostRequest(f"hopcast-{uuid.uuid4()}", TEXT, datetime.now(UTC), lease=lease)
    with pytest.raises(LeaseLost):
        await on_fake.publish(request)
    assert on_fake.fake.creates() == 0 and on_fake.fake.posts == []
    assert lease.asked == [1.0 + READ_TIMEOUT_S]  # for as long as the call may take


async def test_the_sandbox_confirms_the_lease_too() -> None:
    sandbox = SandboxAdapter("LINKEDIN")
    request = PostRequest("hopcast-1-linkedin", "hello", datetime.now(UTC), lease=Gone())
    with pytest.raises(LeaseLost):
        await sandbox.publish(account_on("LINKEDIN", ""), request, resumed=False, on_refreshed=nothing_refreshed)
    assert sandbox.posts == {}


def test_x_text_matching_survives_t_co_escaping_and_normalization() -> None:
    sent = "Beans & <brews>: https://example.com/a?x=1&y=2, hopcast.io\n\n#coffee cafe\u0301"
    from_x = "Beans &amp; &lt;brews&gt;: https://t.co/AbC123, https://t.co/xyz  #coffee caf\u00e9"
    assert same_post_text(sent, from_x)
    assert not same_post_text(sent, from_x.replace("Beans", "Bean"))
    assert not same_post_text(sent, "Beans &amp; &lt;brews&gt;: https://t.co/AbC123 #coffee café")  # a link short
    assert same_post_text("literally &amp; here", "literally &amp;amp; here")  # escaped once, unescaped once


def test_x_links_must_expand_to_the_sent_ones_when_x_says() -> None:
    sent = "Menu https://example.com/menu and hopcast.io"
    rendered, urls = x_rendered(sent, iter(range(1, 10)))  # type: ignore[arg-type]
    assert same_post_text(sent, rendered)
    assert same_links(sent, {"entities": {"urls": urls}})
    other = [dict(urls[0], expanded_url="https://example.com/other"), urls[1]]
    assert not same_links(sent, {"entities": {"urls": other}})
    assert same_links(sent, {"text": rendered})  # X did not say: the text decides
