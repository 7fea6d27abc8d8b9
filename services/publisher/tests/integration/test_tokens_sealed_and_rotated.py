"""Account tokens on the real database: only sealed tokens are taken (a plaintext or tampered one
is dead-lettered and shows nowhere), each opens only on its own account, a refreshed one is
stored sealed, and a key rotation re-encrypts them all (the handler and the CLI command).
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hopcast_publisher.adapters.credentials import AccountTokens
from hopcast_publisher.adapters.platforms.bluesky import BlueskyAdapter
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.service_layer.token_rotation import rotate_tokens
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeBluesky, serve
from hopcast_shared.crypto import TokenDecryptError
from hopcast_shared.db import Database
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration


async def test_a_plaintext_token_is_refused_and_shows_nowhere(harness: Any) -> None:
    tenant = await harness.tenant()
    plaintext = "ya29.a0AfH6SMB-plaintext-oauth-token-123456"
    event = tenant.event(
        "SocialAccountConnected", social_account_id=str(uuid.uuid4()), access_token="v1:" + "A" * 16 + ":" + "B" * 30
    )
    raw = json.loads(event.to_json())
    raw["data"]["access_token"] = plaintext
    outcome = await harness.consumer.handle_record(as_record(json.dumps(raw).encode()))
    assert outcome == "dead_lettered"
    letters = await harness.dead_letters()
    assert len(letters) == 1
    assert letters[0]["event_id"] == raw["id"] and letters[0]["event_type"] == "SocialAccountConnected"
    assert "access_token" in letters[0]["error"]
    everything = await harness.all_text()
    assert plaintext not in everything
    assert await harness.db.pool.fetchval("SELECT count(*) FROM social_accounts") == 0


async def test_a_tampered_token_is_refused(harness: Any) -> None:
    tenant = await harness.tenant()
    account_id = str(uuid.uuid4())
    good = tenant.transport("plain-secret-token", account_id)
    version, nonce, body = good.split(":")
    tampered = f"{version}:{nonce}:{body[:-4]}{'AAAA' if body[-4:] != 'AAAA' else 'BBBB'}"
    event = tenant.event(
        "SocialAccountConnected", social_account_id=account_id, access_token=tampered, refresh_token=None
    )
    assert await harness.send(event) == "dead_lettered"
    [letter] = await harness.dead_letters()
    assert letter["error_kind"] == "token_not_for_account" and "tampered" in letter["error"]
    assert await harness.db.pool.fetchval("SELECT count(*) FROM social_accounts") == 0


async def test_tokens_are_sealed_to_their_account(harness: Any) -> None:
    tenant = await harness.tenant()
    a = await tenant.account("BLUESKY", default=True, token="plain-token-of-a")  # noqa: S106
    b = await tenant.account("MASTODON", default=True, token="plain-token-of-b")  # noqa: S106
    rows = {str(r["id"]): r for r in await harness.db.pool.fetch("SELECT * FROM social_accounts")}
    tokens = AccountTokens(harness.keyring)
    assert tokens.open(uuid.UUID(a), rows[a]["access_token"]) == "plain-token-of-a"
    # a token copied onto another account's row does not open there: publishing fails as TOKEN_INVALID
    await harness.db.pool.execute(
        "UPDATE social_accounts SET access_token = $1 WHERE id = $2", rows[a]["access_token"], uuid.UUID(b)
    )
    post = tenant.post_events(platforms=["BLUESKY", "MASTODON"])
    await harness.deliver(post, "post", "debit")
    await harness.publish()
    failed = await harness.events("PostPublishFailed")
    assert [(e["data"]["platform"], e["data"]["reason"]) for e in failed] == [("MASTODON", "TOKEN_INVALID")]
    assert "plain-token" not in await harness.all_text()


async def test_an_expiring_token_is_refreshed_and_stored_sealed(db: Database, harness_with: Any) -> None:
    fake = FakeBluesky()
    async with serve(fake) as base_url:
        adapter = BlueskyAdapter(pds_url=base_url, options=AdapterOptions(egress=LOOPBACK_EGRESS))
        harness = harness_with({"BLUESKY": adapter})
        tenant = await harness.tenant()
        account_id = str(uuid.uuid4())
        soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
        await harness.send(
            tenant.event(
                "SocialAccountConnected",
                social_account_id=account_id,
                platform="BLUESKY",
                api_base_url=None,
                access_token=tenant.transport("expired-access", account_id),
                refresh_token=tenant.transport("good-refresh", account_id),
                token_expires_at=soon,
            )
        )
        await harness.send(
            tenant.event("BrandAccountLinked", brand_profile_id=tenant.brand, social_account_id=account_id)
        )
        post = tenant.post_events(platforms=["BLUESKY"])
        await harness.deliver(post, "post", "debit")
        await harness.publish()
        assert len(fake.posts) == 1
        row = await db.pool.fetchrow("SELECT access_token, refresh_token FROM social_accounts")
        tokens = AccountTokens(harness.keyring)
        assert tokens.open(uuid.UUID(account_id), row["access_token"]) == "fresh-access"
        assert "fresh-access" not in await harness.all_text()
        await adapter.close()


async def test_rotation_reencrypts_every_token_under_the_newest_key(harness: Any, db: Database, rotation: Any) -> None:
    tenant = await harness.tenant()
    ids = [await tenant.account("BLUESKY", token=f"plain-{i}") for i in range(5)]
    assert all(
        t.startswith("v1:") for t in await db.pool.fetchval("SELECT array_agg(access_token) FROM social_accounts")
    )
    rotated = rotation.tokens
    async with db.pool.acquire() as conn:
        report = await rotate_tokens(conn, rotated, batch_size=2)
        again = await rotate_tokens(conn, rotated, batch_size=2)
    assert (report.checked, report.rotated, report.undecryptable) == (5, 5, 0)
    assert again.rotated == 0
    rows = {
        str(r["id"]): r["access_token"] for r in await db.pool.fetch("SELECT id, access_token FROM social_accounts")
    }
    assert all(t.startswith("v2:") for t in rows.values())
    assert sorted(rotated.open(uuid.UUID(i), rows[i]) for i in ids) == [f"plain-{i}" for i in range(5)]
    # Re-encrypted with the same binding: still the stored account's own, nobody else's, and
    # not a token in transit either.
    with pytest.raises(TokenDecryptError):
        rotated.open(uuid.UUID(ids[1]), rows[ids[0]])
    with pytest.raises(TokenDecryptError):
        rotated.from_transit(uuid.UUID(tenant.org), uuid.UUID(ids[0]), rows[ids[0]])


async def test_the_rotate_tokens_command(harness: Any, db: Database, rotation: Any) -> None:
    """`hopcast publisher rotate-tokens` (the design's `hopcast tokens rotate`) in its own process."""
    import asyncio
    import subprocess
    import sys

    tenant = await harness.tenant()
    ids = [await tenant.account("MASTODON", token=f"plain-{i}") for i in range(3)]
    env = {**os.environ, "PUBLISHER_DATABASE_URL": db.url, "TOKEN_KEYS": rotation.token_keys, "HOPCAST_ENV": "test"}
    command = [sys.executable, "-c", "from hopcast_publisher.entrypoints.cli import app; app()", "rotate-tokens"]
    done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 account(s) checked, 3 rotated" in done.stdout
    rows = {
        str(r["id"]): r["access_token"] for r in await db.pool.fetch("SELECT id, access_token FROM social_accounts")
    }
    tokens = rotation.tokens
    assert all(t.startswith("v2:") for t in rows.values())
    assert sorted(tokens.open(uuid.UUID(i), rows[i]) for i in ids) == ["plain-0", "plain-1", "plain-2"]
    missing = [sys.executable, "-c", "from hopcast_publisher.entrypoints.cli import app; app()", "delete-post"]
    gone = await asyncio.to_thread(
        subprocess.run,
        [*missing, str(uuid.uuid4()), "--organization", str(uuid.uuid4())],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gone.returncode == 1 and "no post" in gone.stderr
