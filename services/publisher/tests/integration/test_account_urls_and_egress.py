"""Where the publisher may call: an account URL that is not a public https host is
dead-lettered, and an instance whose name resolves to a private address fails that platform
EGRESS_REFUSED at connect time, the post's other platforms still published. On the real database.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.sandbox import SandboxAdapter
from hopcast_publisher.testing import FakeMastodon, serve
from hopcast_shared.testing import as_record

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "url", ["http://mastodon.example", "https://10.0.0.1", "https://169.254.169.254", "https://2130706433"]
)
async def test_an_account_url_that_is_not_public_https_is_dead_lettered(harness: Any, url: str) -> None:
    tenant = await harness.tenant()
    account_id = str(uuid.uuid4())
    event = tenant.event(
        "SocialAccountConnected",
        social_account_id=account_id,
        platform="MASTODON",
        access_token=tenant.transport("plain-access", account_id),
        api_base_url="https://mastodon.example",
    )
    raw = json.loads(event.to_json())
    raw["data"]["api_base_url"] = url
    assert await harness.consumer.handle_record(as_record(json.dumps(raw).encode())) == "dead_lettered"
    (letter,) = await harness.dead_letters()
    assert "api_base_url" in letter["error"] and "public host" in letter["error"]
    assert await harness.db.pool.fetchval("SELECT count(*) FROM social_accounts") == 0


async def test_an_instance_resolving_to_a_private_address_fails_egress_refused(harness_with: Any) -> None:
    """The name passes the contract; at connect time it resolves to loopback: the platform
    fails EGRESS_REFUSED, the post's other platform still goes out, and the server on that
    address (a real one) receives nothing."""
    fake = FakeMastodon()
    async with serve(fake) as base_url:
        port = base_url.rsplit(":", 1)[1]

        async def to_loopback(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        adapter = MastodonAdapter(
            client_id="app",
            client_secret="app-secret",  # noqa: S106
            options=AdapterOptions(egress=EgressPolicy(resolver=to_loopback)),
        )
        harness = harness_with({"MASTODON": adapter, "BLUESKY": SandboxAdapter("BLUESKY")})
        tenant = await harness.tenant()
        instance = f"https://mastodon.example:{port}"
        await tenant.account("MASTODON", default=True, token="good-access", api_base_url=instance)  # noqa: S106
        await tenant.account("BLUESKY", default=True)
        post = tenant.post_events(platforms=["MASTODON", "BLUESKY"])
        await harness.deliver(post, "post", "debit")
        assert await harness.publish() == 1
        (failed,) = await harness.events("PostPublishFailed", "t.publisher.events")
        assert failed["data"]["reason"] == "EGRESS_REFUSED"
        assert failed["data"]["detail"] == (
            "MASTODON: egress to mastodon.example refused: resolves to 127.0.0.1 (loopback)"
        )
        assert [e["data"]["platform"] for e in await harness.events("PostPublished", "t.publisher.events")] == [
            "BLUESKY"
        ]
        assert fake.calls == [] and fake.posts == []
        await adapter.close()
