"""The publisher's own token refresh, both ways (issue 16), on the real database against the fake
platform servers: a refresh is stored sealed and told upstream bound to its account; a refused
refresh or a token refused after one marks the account for re-authorization once, and it is not
used until a newer pair arrives. Given these events, expect those rows, those events in the
outbox and those calls on the platform.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.base import PlatformAdapter
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.linkedin import LinkedInAdapter
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
from hopcast_shared.contract import Envelope
from hopcast_shared.crypto import TokenDecryptError, account_transit_aad, owner_aad
from hopcast_shared.db import Database

pytestmark = pytest.mark.integration


T0 = datetime(2026, 1, 1, tzinfo=UTC)


# The fakes live on loopback, which the egress guard refuses unless told otherwise.
LOOPBACK = AdapterOptions(egress=LOOPBACK_EGRESS)


def _x(base_url: str) -> XAdapter:
    return XAdapter(api_url=base_url, client_id="app", options=LOOPBACK)


async def test_a_refresh_is_stored_and_told_upstream_bound_to_the_account(harness_with: Any) -> None:
    fake = FakeX()
    async with serve(fake) as base_url:
        adapter = _x(base_url)
        world = harness_with({"TWITTER": adapter})
        org = await world.org()
        account = str(uuid.uuid4())
        soon = datetime.now(UTC) + timedelta(seconds=30)

        def on_x(**changes: Any) -> Envelope:
            """An event of this account on X."""
            return org.account_event(account, platform="TWITTER", external_account_id=FakeX.user_id, **changes)

        connected = on_x(
            access=org.seal("expired-access", account),
            refresh=org.seal("good-refresh", account),
            token_expires_at=org.rfc3339(soon),
            issued_at=T0,
        )
        assert await world.send(connected) == "handled"
        await org.link(account)
        await org.post("TWITTER")
        before = datetime.now(UTC)
        await world.publish()
        assert len(fake.posts) == 1
        assert ("POST", "/2/oauth2/token") in fake.calls

        [refreshed] = await world.events("SocialAccountTokensRefreshed")
        data = refreshed["data"]
        assert refreshed["topic"] == "t.publisher.events" and refreshed["organizationid"] == org.id
        assert data["social_account_id"] == account
        # The ciphertexts open only with the binding to this organization and account.
        bound = account_transit_aad(org.id, account)
        assert world.keyring.decrypt(data["access_token"], associated_data=bound) == "fresh-access"
        assert world.keyring.decrypt(data["refresh_token"], associated_data=bound) == "r-fresh-access"
        for wrong in (
            account_transit_aad(org.id, uuid.uuid4()),
            account_transit_aad(uuid.uuid4(), account),
            owner_aad("social_account", account),
        ):
            with pytest.raises(TokenDecryptError):
                world.keyring.decrypt(data["access_token"], associated_data=wrong)
        # Stored sealed, with the publisher's own issued time, the one the event carries.
        row = await world.account(account)
        assert await world.opened(account) == "fresh-access"
        assert before <= row["tokens_issued_at"] <= datetime.now(UTC)
        assert data["tokens_issued_at"] == org.rfc3339(row["tokens_issued_at"])
        assert "fresh-access" not in json.dumps(await world.events("PostPublished"))

        # Upstream echoes the pair back: taken (same instant). Upstream's stale pair: ignored,
        # the refreshed pair stays (X rotates refresh tokens: the old one no longer works).
        echo = on_x(
            access=data["access_token"],
            refresh=data["refresh_token"],
            token_expires_at=data["token_expires_at"],
            tokens_issued_at=data["tokens_issued_at"],
            type_name="SocialAccountUpdated",
        )
        assert await world.send(echo) == "handled"
        stale = on_x(
            access=org.seal("expired-access", account),
            refresh=org.seal("good-refresh", account),
            issued_at=T0,
            type_name="SocialAccountUpdated",
        )
        assert await world.send(stale) == "handled"
        assert await world.opened(account) == "fresh-access"
        refresh = (await world.account(account))["refresh_token"]
        assert world.tokens.open(uuid.UUID(account), refresh) == "r-fresh-access"
        await adapter.close()


def _adapter(platform: str, base_url: str) -> PlatformAdapter:
    if platform == "BLUESKY":
        return BlueskyAdapter(pds_url=base_url, options=LOOPBACK)
    if platform == "MASTODON":
        return MastodonAdapter(client_id="app", client_secret="secret", options=LOOPBACK)  # noqa: S106
    if platform == "TWITTER":
        return _x(base_url)
    return LinkedInAdapter(
        api_url=base_url,
        oauth_url=base_url,
        client_id="app",
        client_secret="secret",  # noqa: S106
        options=LOOPBACK,
    )


FAKES: dict[str, type[FakePlatform]] = {
    "LINKEDIN": FakeLinkedIn,
    "MASTODON": FakeMastodon,
    "TWITTER": FakeX,
    "BLUESKY": FakeBluesky,
}


EXTERNAL = {"BLUESKY": "did:plc:hopcast", "TWITTER": FakeX.user_id, "LINKEDIN": "urn:li:person:abc123"}


@pytest.mark.parametrize("platform", sorted(FAKES))
async def test_a_refused_refresh_marks_the_account_once_and_it_is_not_used_until_a_newer_pair(
    db: Database, harness_with: Any, platform: str
) -> None:
    fake = FAKES[platform]()
    async with serve(fake) as base_url:
        adapter = _adapter(platform, base_url)
        world = harness_with({platform: adapter})
        org = await world.org()
        account = str(uuid.uuid4())

        def state(access: str, refresh: str, issued_at: datetime, type_name: str) -> Envelope:
            return org.account_event(
                account,
                platform=platform,
                api_base_url="https://mastodon.example" if platform == "MASTODON" else None,
                external_account_id=EXTERNAL.get(platform),
                access=org.seal(access, account),
                refresh=org.seal(refresh, account),
                issued_at=issued_at,
                type_name=type_name,
            )

        async def connect(event: Envelope) -> str:
            """Send an account event; a Mastodon account is then pointed at the fake instance on
            loopback (events may name only https instances of public hosts, so no event can)."""
            outcome = await world.send(event)
            if platform == "MASTODON":
                await db.pool.execute(
                    "UPDATE social_accounts SET api_base_url = $1 WHERE id = $2", base_url, uuid.UUID(account)
                )
            return outcome

        # The access token expired and the platform no longer takes the refresh token.
        assert await connect(state("expired-access", "revoked-refresh", T0, "SocialAccountConnected")) == "handled"
        await org.link(account)
        first = await org.post(platform)
        await world.publish()
        [failed] = await world.events("PostPublishFailed")
        assert (failed["data"]["run_id"], failed["data"]["reason"]) == (first, "TOKEN_INVALID")
        [reauth] = await world.events("SocialAccountNeedsReauth")
        assert reauth["topic"] == "t.publisher.events" and reauth["organizationid"] == org.id
        assert reauth["data"] == {"social_account_id": account, "platform": platform, "reason": "REFRESH_REJECTED"}
        assert (await world.account(account))["needs_reauth"] == "REFRESH_REJECTED"
        assert fake.posts == []

        # Not used any more: the next post fails with no call to the platform, and says why once.
        calls = len(fake.calls)
        second = await org.post(platform)
        await world.publish()
        assert len(fake.calls) == calls
        failures = {e["data"]["run_id"]: e["data"] for e in await world.events("PostPublishFailed")}
        assert failures[second]["reason"] == "TOKEN_INVALID"
        assert "re-authorization (REFRESH_REJECTED)" in failures[second]["detail"]
        assert len(await world.events("SocialAccountNeedsReauth")) == 1

        # An older pair leaves it marked; the owner connects it again (a newer pair): usable.
        assert await connect(state("good-access", "good-refresh", T0, "SocialAccountUpdated")) == "handled"
        assert (await world.account(account))["needs_reauth"] == "REFRESH_REJECTED"
        newer = state("good-access", "good-refresh", T0 + timedelta(hours=1), "SocialAccountUpdated")
        assert await connect(newer) == "handled"
        row = await world.account(account)
        assert row["needs_reauth"] is None and row["needs_reauth_since"] is None
        third = await org.post(platform)
        await world.publish()
        assert len(fake.posts) == 1
        [published] = [e for e in await world.events("PostPublished") if e["topic"] == "t.publisher.events"]
        assert published["data"]["run_id"] == third
        await adapter.close()


@asynccontextmanager
async def _linked_linkedin_account(
    harness_with: Any, refresh_token: str
) -> AsyncIterator[tuple[FakeLinkedIn, Any, Any, str]]:
    """The fake LinkedIn, the publisher calling it, and a new organization with an account there
    (its access token expired) linked to its brand: (fake, world, org, account)."""
    fake = FakeLinkedIn()
    async with serve(fake) as base_url:
        adapter = _adapter("LINKEDIN", base_url)
        world = harness_with({"LINKEDIN": adapter})
        org = await world.org()
        account = str(uuid.uuid4())
        connected = org.account_event(
            account,
            platform="LINKEDIN",
            external_account_id=EXTERNAL["LINKEDIN"],
            access=org.seal("expired-access", account),
            refresh=org.seal(refresh_token, account),
            issued_at=T0,
        )
        assert await world.send(connected) == "handled"
        await org.link(account)
        yield fake, world, org, account
        await adapter.close()


async def test_a_token_refused_after_a_refresh_marks_the_account_unauthorized(harness_with: Any) -> None:
    async with _linked_linkedin_account(harness_with, "good-refresh") as (fake, world, org, account):
        fake.fail_next(Fault(401))  # the refreshed token is refused too
        await org.post("LINKEDIN")
        await world.publish()
        # The refresh itself worked (and was told upstream); the platform still refused.
        assert len(await world.events("SocialAccountTokensRefreshed")) == 1
        [reauth] = await world.events("SocialAccountNeedsReauth")
        assert reauth["data"]["reason"] == "UNAUTHORIZED"
        assert (await world.account(account))["needs_reauth"] == "UNAUTHORIZED"
        [failed] = await world.events("PostPublishFailed")
        assert failed["data"]["reason"] == "TOKEN_INVALID" and fake.posts == []


async def test_posts_of_a_refused_account_in_the_same_round_call_the_platform_once(harness_with: Any) -> None:
    async with _linked_linkedin_account(harness_with, "revoked-refresh") as (fake, world, org, _):
        runs = {await org.post("LINKEDIN") for _ in range(4)}
        assert await world.publish() == 4  # one round for all four
        assert fake.creates() == 1 and fake.calls.count(("POST", "/oauth/v2/accessToken")) == 1
        failed = await world.events("PostPublishFailed")
        assert {e["data"]["run_id"] for e in failed} == runs
        assert {e["data"]["reason"] for e in failed} == {"TOKEN_INVALID"}
        assert len(await world.events("SocialAccountNeedsReauth")) == 1
