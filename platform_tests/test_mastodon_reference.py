"""The Mastodon adapter's requests held to the reference client, Mastodon.py (PyPI, pinned).

No Mastodon-API server can be installed here (the registries serve none; GoToSocial, which a
Go build could give, ignores Idempotency-Key anyway), so this is not a server check: Mastodon.py
and our adapter post the same status to one local recording server, and their requests must
agree on what Mastodon reads (the API documentation, POST /api/v1/statuses): method, path,
the bearer token, the Idempotency-Key header, and the form or JSON fields, which Mastodon
takes alike. What an instance then does with them (de-duplication within an hour, 422 on an
invalid status) is exercised against the fake in the publisher's own tests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
from mastodon import Mastodon

from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostRequest
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, Answer, FakePlatform, Request, serve

TOKEN = "reference-access-token"  # noqa: S105 - a made-up token for a local recorder
TEXT = "Spring menu 🌸 https://example.com/menu #Spring2027 @alice@example.social"


class Recorder(FakePlatform):
    """Answers every call as Mastodon answers a created status, and keeps the requests."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []

    async def route(self, request: Request) -> Answer:
        self.requests.append(request)
        status = {
            "id": "110000000000000001",
            "uri": "https://example.social/users/hopcast/statuses/110000000000000001",
            "url": "https://example.social/@hopcast/110000000000000001",
            "created_at": "2027-03-01T09:00:00.000Z",
            "content": "<p>x</p>",
            "visibility": "public",
        }
        return 200, {}, status


def fields(request: Request) -> dict[str, Any]:
    """The status fields of a request, whichever body encoding it chose (Mastodon reads both)."""
    if "json" in request.headers.get("content-type", ""):
        parsed: dict[str, Any] = request.json()
        return parsed
    return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(request.body.decode()).items()}


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    app = Recorder()
    async with serve(app) as url:
        yield app, url


async def test_our_status_request_is_the_one_mastodon_py_sends(recorder: tuple[Recorder, str]) -> None:
    app, url = recorder
    key = f"hopcast-{uuid.uuid4()}"

    def reference_client() -> None:
        client = Mastodon(access_token=TOKEN, api_base_url=url, version_check_mode="none")
        client.status_post(TEXT, visibility="public", idempotency_key=key)

    await asyncio.to_thread(reference_client)
    adapter = MastodonAdapter(options=AdapterOptions(egress=LOOPBACK_EGRESS))
    account = AccountCredentials(uuid.uuid4(), "MASTODON", "@hopcast", None, url, TOKEN)

    async def nothing(*_: object) -> None:
        return None

    published = await adapter.publish(
        account, PostRequest(key, TEXT, datetime.now(UTC)), resumed=False, on_refreshed=nothing
    )
    await adapter.close()
    reference, ours = app.requests
    assert published.external_id == "110000000000000001"
    assert (ours.method, ours.path) == (reference.method, reference.path) == ("POST", "/api/v1/statuses")
    for header in ("authorization", "idempotency-key"):
        assert ours.headers[header] == reference.headers[header], header
    assert ours.headers["idempotency-key"] == key and ours.headers["authorization"] == f"Bearer {TOKEN}"
    expected = fields(reference)
    # Mastodon.py also sends `sensitive` at its API default (false), which we leave out.
    assert expected.pop("sensitive") in ("0", "false", False)
    assert fields(ours) == expected == {"status": TEXT, "visibility": "public"}


async def test_a_retry_sends_the_same_idempotency_key_as_the_first_try(recorder: tuple[Recorder, str]) -> None:
    # The reference client sends the key it is given on each call; ours derives it from the
    # post, so a second publish of the same post (a retry after a crash) sends the same one.
    app, url = recorder
    adapter = MastodonAdapter(options=AdapterOptions(egress=LOOPBACK_EGRESS))
    account = AccountCredentials(uuid.uuid4(), "MASTODON", "@hopcast", None, url, TOKEN)
    request = PostRequest(f"hopcast-{uuid.uuid4()}", TEXT, datetime.now(UTC))

    async def nothing(*_: object) -> None:
        return None

    await adapter.publish(account, request, resumed=False, on_refreshed=nothing)
    await adapter.publish(account, request, resumed=True, on_refreshed=nothing)
    await adapter.close()
    first, second = app.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == request.idempotency_key
    assert fields(first) == fields(second)
