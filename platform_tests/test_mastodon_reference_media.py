"""The Mastodon adapter's media requests held to the reference client, Mastodon.py (as
`test_mastodon_reference.py` does for statuses): both upload the same image with its
description to one local recorder that answers as an instance processing it in the background
(202 with `url` null, then 200 from GET /api/v1/media/:id), then post a status with it. Their
requests must agree on what Mastodon reads: the upload's path and multipart fields, the poll's
path, the status's `media_ids`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
from mastodon import Mastodon

from hopcast_publisher.adapters.media_uploads import MemoryMediaUploads
from hopcast_publisher.adapters.platforms.base import AccountCredentials, PostMedia, PostRequest
from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.adapters.platforms.media import MediaOptions
from hopcast_publisher.adapters.platforms.media_fetch import MediaFetcher
from hopcast_publisher.testing import LOOPBACK_EGRESS, Answer, FakePlatform, Request, serve
from hopcast_publisher.testing_media import MediaServer, form_fields, image_bytes

TOKEN = "reference-access-token"  # noqa: S105 - a made-up token for a local recorder
ALT = "A cup of coffee on a wooden table"
MEDIA_ID = "22345678901234567"
INSTANCE = {
    "domain": "example.social",
    "uri": "example.social",
    "version": "4.3.0",
    "api_versions": {"mastodon": 2},
    "configuration": {
        "statuses": {"max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23},
        "media_attachments": {"supported_mime_types": ["image/png", "image/jpeg"], "image_size_limit": 16777216},
    },
}


class MediaRecorder(FakePlatform):
    """Answers as an instance: uploads processed in the background, statuses created."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self._polled: set[str] = set()

    async def route(self, request: Request) -> Answer:
        self.requests.append(request)
        attachment = {"id": MEDIA_ID, "type": "image", "url": None, "preview_url": None, "description": ALT}
        if (request.method, request.path) == ("POST", "/api/v2/media"):
            return 202, {}, attachment
        if request.path == f"/api/v1/media/{MEDIA_ID}":
            return 200, {}, attachment | {"url": f"https://files.example.social/{MEDIA_ID}.png"}
        if request.path == "/api/v1/statuses":
            status = {"id": "110000000000000002", "url": "https://example.social/@hopcast/110000000000000002"}
            return 200, {}, status | {"created_at": "2027-03-01T09:00:00.000Z", "content": "<p>x</p>"}
        if request.path in ("/api/v1/instance", "/api/v2/instance"):
            return 200, {}, INSTANCE
        return 404, {}, {"error": "Record not found"}


def status_media_ids(request: Request) -> list[str]:
    if "json" in request.headers.get("content-type", ""):
        return [str(i) for i in request.json().get("media_ids", [])]
    form = parse_qs(request.body.decode())
    return form.get("media_ids[]", form.get("media_ids", []))


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[MediaRecorder, str]]:
    app = MediaRecorder()
    async with serve(app) as url:
        yield app, url


async def test_our_upload_poll_and_status_are_the_ones_mastodon_py_sends(
    recorder: tuple[MediaRecorder, str],
) -> None:
    app, url = recorder
    png = image_bytes(320, 240)

    def reference_client() -> None:
        client = Mastodon(access_token=TOKEN, api_base_url=url, version_check_mode="none", mastodon_version="4.3.0")
        # Mastodon.py 2.x keeps 1.0.0 until it reads /api/v1/instance; /api/v2/media needs >= 3.1.4.
        client.mastodon_major, client.mastodon_minor, client.mastodon_patch = 4, 3, 0
        # synchronous=True would re-read the version, which Mastodon.py 2.x fails to parse from a
        # bare instance: its own wait, `media()` until `url` is set, is done here instead.
        media = client.media_post(png, mime_type="image/png", description=ALT)
        while media.get("url") is None:
            media = client.media(media)
        client.status_post("With a photo", media_ids=[media], idempotency_key="reference")

    await asyncio.to_thread(reference_client)
    reference = [r for r in app.requests]
    app.requests.clear()

    files = MediaServer()
    files.files["/cup.png"] = (png, "image/png")
    async with serve(files) as media_url:
        options = AdapterOptions(
            egress=LOOPBACK_EGRESS,
            media=MediaOptions(MediaFetcher(LOOPBACK_EGRESS), MemoryMediaUploads(), poll_interval_s=0.01),
        )
        adapter = MastodonAdapter(options=options)
        account = AccountCredentials(uuid.uuid4(), "MASTODON", "@hopcast", None, url, TOKEN)

        async def nothing(*_: Any) -> None:
            return None

        request = PostRequest(
            f"hopcast-{uuid.uuid4()}",
            "With a photo",
            datetime.now(UTC),
            media=(PostMedia(f"{media_url}/cup.png", ALT, "image/png"),),
        )
        await adapter.publish(account, request, resumed=False, on_refreshed=nothing)
        await adapter.close()
    ours = [r for r in app.requests if "/instance" not in r.path]
    reference = [r for r in reference if "/instance" not in r.path]

    def shape(requests: list[Request]) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in requests]

    assert (
        shape(ours)
        == shape(reference)
        == [
            ("POST", "/api/v2/media"),
            ("GET", f"/api/v1/media/{MEDIA_ID}"),
            ("POST", "/api/v1/statuses"),
        ]
    )
    (their_upload, _, their_status), (our_upload, _, our_status) = reference, ours
    theirs, mine = form_fields(their_upload), form_fields(our_upload)
    assert set(mine) == set(theirs) == {"file", "description"}
    assert mine["file"][0] == theirs["file"][0] == png  # the same bytes
    assert mine["file"][1] == theirs["file"][1] == "image/png"
    assert mine["description"][0] == theirs["description"][0] == ALT.encode()
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in ours)
    assert status_media_ids(our_status) == status_media_ids(their_status) == [MEDIA_ID]
