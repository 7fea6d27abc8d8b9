"""Fixtures of the publisher's unit tests: a media host on 127.0.0.1 serving files a test puts
there (`hopcast_publisher.testing_media.MediaServer`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hopcast_publisher.testing import serve
from hopcast_publisher.testing_media import MediaServer


@dataclass
class MediaHost:
    server: MediaServer
    url: str

    def put(self, path: str, data: bytes, content_type: str = "image/png") -> str:
        """Serve `data` at `path`; its URL."""
        self.server.files[path] = (data, content_type)
        return f"{self.url}{path}"


@pytest.fixture
async def media_host() -> AsyncIterator[MediaHost]:
    server = MediaServer()
    async with serve(server) as url:
        yield MediaHost(server, url)
