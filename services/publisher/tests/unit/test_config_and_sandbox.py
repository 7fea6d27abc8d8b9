"""Adapter choice by configuration, settings validated at start, and the sandbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest, RefreshedTokens
from hopcast_publisher.adapters.platforms.registry import build_adapters
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.config import PublisherSettings
from hopcast_shared.contract import Platform
from hopcast_shared.contract.fields import Url
from hopcast_shared.settings import SettingsError, load


async def test_sandbox_by_default_for_every_platform_and_live_for_the_seven() -> None:
    sandbox = build_adapters(PublisherSettings())
    assert set(sandbox) == {p.value for p in Platform}
    assert all(isinstance(a, SandboxAdapter) for a in sandbox.values())
    live = build_adapters(PublisherSettings(adapter="live"))
    assert set(live) == {"BLUESKY", "MASTODON", "TWITTER", "LINKEDIN", "FACEBOOK", "INSTAGRAM", "THREADS"}
    for adapter in live.values():
        await adapter.close()


def test_a_lease_that_cannot_outlast_a_call_between_renewals_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="lease_s"):  # 2/3 of 30 s < 5 s + 15 s + the margin
        load(PublisherSettings, lease_s=30, http_connect_timeout_s=5, http_read_timeout_s=15)
    assert load(PublisherSettings, lease_s=2, http_connect_timeout_s=0.2, http_read_timeout_s=0.5).lease_s == 2
    with pytest.raises(SettingsError, match="adapter"):
        load(PublisherSettings, adapter="carrier-pigeon")


async def test_the_sandbox_records_posts_and_is_idempotent_by_key() -> None:
    sandbox = SandboxAdapter("MASTODON", base_url="https://sandbox.example")
    account = AccountCredentials(uuid.uuid4(), "MASTODON", "@hop", None, "https://m.example", "token")
    request = PostRequest("hopcast-1-mastodon", "hello", datetime.now(UTC))

    async def stored(account: AccountCredentials, tokens: RefreshedTokens) -> None:
        raise AssertionError("the sandbox never refreshes through the platform")

    first = await sandbox.publish(account, request, resumed=False, on_refreshed=stored)
    again = await sandbox.publish(account, request, resumed=True, on_refreshed=stored)
    other = await sandbox.publish(
        account, PostRequest("hopcast-2-mastodon", "hello", datetime.now(UTC)), resumed=False, on_refreshed=stored
    )
    assert first == again and other.external_id != first.external_id
    assert first.external_url.startswith("https://sandbox.example/mastodon/")
    assert list(sandbox.posts) == ["hopcast-1-mastodon", "hopcast-2-mastodon"]
    assert sandbox.posts["hopcast-1-mastodon"].text == "hello"


async def test_the_sandbox_makes_a_valid_url_from_a_handle_with_spaces() -> None:
    # A LinkedIn or Facebook page is handled by its name; PostPublished refuses a URL with spaces.
    sandbox = SandboxAdapter("LINKEDIN", base_url="https://sandbox.example")
    account = AccountCredentials(uuid.uuid4(), "LINKEDIN", "Lumen Yoga Studio", None, None, "token")

    async def stored(account: AccountCredentials, tokens: RefreshedTokens) -> None:
        raise AssertionError("the sandbox never refreshes through the platform")

    published = await sandbox.publish(
        account, PostRequest("hopcast-3-linkedin", "hello", datetime.now(UTC)), resumed=False, on_refreshed=stored
    )
    assert TypeAdapter(Url).validate_python(published.external_url) == published.external_url
    assert "/linkedin/Lumen%20Yoga%20Studio/" in published.external_url
