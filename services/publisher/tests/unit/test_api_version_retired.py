"""A platform that no longer serves the API version we call fails that platform
API_VERSION_RETIRED at once: no retry, a count by platform and version, and a log line naming
the version and the setting that changes it. Against the fake servers, which answer as the
platforms do (LinkedIn: 426 NONEXISTENT_VERSION for a sunset LinkedIn-Version)."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, PublishFailure, RetryPolicy
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.versions import graph_version_retired, linkedin_version_retired
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeLinkedIn, FakeMastodon, Fault, serve
from hopcast_shared.contract import PublishFailureReason

OPTIONS = AdapterOptions(
    policy=RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.02, deadline_s=5.0),
    egress=LOOPBACK_EGRESS,
    rng=random.Random(3),
)


def _account(platform: str, base_url: str) -> AccountCredentials:
    return AccountCredentials(
        social_account_id=uuid.uuid4(),
        platform=platform,
        handle="@hopcast",
        external_account_id="urn:li:person:abc123" if platform == "LINKEDIN" else None,
        api_base_url=base_url if platform == "MASTODON" else None,
        access_token="good-access",  # noqa: S106
        refresh_token="good-refresh",  # noqa: S106
    )


def _request() -> PostRequest:
    return PostRequest(f"hopcast-{uuid.uuid4()}", "Spring menu is out #coffee", datetime.now(UTC))


async def _no_refresh(*_: object) -> None:
    raise AssertionError("no token refresh expected")


def _retired_count(platform: str, version: str) -> float:
    labels = {"platform": platform, "version": version}
    return REGISTRY.get_sample_value("hopcast_publisher_api_version_retired_total", labels) or 0.0


@pytest.fixture
async def linkedin() -> AsyncIterator[tuple[FakeLinkedIn, str]]:
    fake = FakeLinkedIn()
    async with serve(fake) as base_url:
        yield fake, base_url


def _linkedin_adapter(base_url: str, version: str) -> LinkedInAdapter:
    return LinkedInAdapter(
        api_url=base_url,
        oauth_url=base_url,
        version=version,
        client_id="app",
        client_secret="s",  # noqa: S106
        options=OPTIONS,
    )


async def test_a_sunset_linkedin_version_fails_api_version_retired_without_retry(
    linkedin: tuple[FakeLinkedIn, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base_url = linkedin
    adapter = _linkedin_adapter(base_url, "202506")
    before = _retired_count("LINKEDIN", "202506")
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(PublishFailure) as failure:
            await adapter.publish(_account("LINKEDIN", base_url), _request(), resumed=False, on_refreshed=_no_refresh)
    finally:
        await adapter.close()

    assert failure.value.reason is PublishFailureReason.API_VERSION_RETIRED
    assert failure.value.detail == (
        "LINKEDIN answered 426 (NONEXISTENT_VERSION): API version 202506 is retired;"
        " set PUBLISHER_LINKEDIN_VERSION to a current one"
    )
    assert fake.creates() == 1 and fake.posts == []
    assert _retired_count("LINKEDIN", "202506") == before + 1
    [line] = [r.getMessage() for r in caplog.records if "no longer serves" in r.getMessage()]
    assert "LINKEDIN no longer serves API version 202506" in line and "PUBLISHER_LINKEDIN_VERSION" in line


async def test_a_current_linkedin_version_publishes(linkedin: tuple[FakeLinkedIn, str]) -> None:
    fake, base_url = linkedin
    adapter = _linkedin_adapter(base_url, "202611")
    try:
        await adapter.publish(_account("LINKEDIN", base_url), _request(), resumed=False, on_refreshed=_no_refresh)
    finally:
        await adapter.close()
    assert len(fake.posts) == 1


async def test_a_resumed_post_whose_lookup_meets_a_sunset_version_is_not_retried(
    linkedin: tuple[FakeLinkedIn, str],
) -> None:
    # Resumed after a crash, the adapter first asks whether the post exists: that read is
    # versioned too, and its 426 ends the platform instead of being retried as "no answer".
    fake, base_url = linkedin
    adapter = _linkedin_adapter(base_url, "202506")
    try:
        with pytest.raises(PublishFailure) as failure:
            await adapter.publish(_account("LINKEDIN", base_url), _request(), resumed=True, on_refreshed=_no_refresh)
    finally:
        await adapter.close()
    assert failure.value.reason is PublishFailureReason.API_VERSION_RETIRED
    assert fake.calls == [("GET", "/rest/posts")]


async def test_a_426_from_any_platform_is_api_version_retired() -> None:
    fake = FakeMastodon()
    fake.fail_next(Fault(426, body={"error": "Upgrade Required"}))
    async with serve(fake) as base_url:
        adapter = MastodonAdapter(options=OPTIONS)
        try:
            with pytest.raises(PublishFailure) as failure:
                await adapter.publish(
                    _account("MASTODON", base_url), _request(), resumed=False, on_refreshed=_no_refresh
                )
        finally:
            await adapter.close()
    assert failure.value.reason is PublishFailureReason.API_VERSION_RETIRED
    assert fake.creates() == 1


def test_linkedin_answers_that_name_the_version() -> None:
    assert linkedin_version_retired(426, {"status": 426, "code": "NONEXISTENT_VERSION"})
    assert linkedin_version_retired(400, {"status": 400, "code": "VERSION_MISSING"})
    assert not linkedin_version_retired(422, {"status": 422, "code": "UNPROCESSABLE_ENTITY"})
    assert not linkedin_version_retired(403, {"code": "ACCESS_DENIED"})


def test_graph_api_answers_that_name_the_version() -> None:
    deprecated = "(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version."
    assert graph_version_retired(400, {"error": {"message": deprecated, "type": "OAuthException", "code": 2635}})
    assert graph_version_retired(400, {"error": {"message": "Graph API version v18.0 is deprecated", "code": 1}})
    assert graph_version_retired(426, {})
    # A refused post, an expired token, a feature deprecated in every version: not the version.
    assert not graph_version_retired(400, {"error": {"message": "(#100) Invalid parameter", "code": 100}})
    assert not graph_version_retired(401, {"error": {"message": "Error validating access token", "code": 190}})
    assert not graph_version_retired(400, {"error": {"message": "(#12) This endpoint is deprecated", "code": 12}})
    assert not graph_version_retired(400, {"error": "not an object"})
