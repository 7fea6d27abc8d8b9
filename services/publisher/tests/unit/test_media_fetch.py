"""Fetching media safely (issue 18): through the egress guard, capped, the type from the bytes,
the dimensions from the header; every refusal names the file and never its URL."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image

from hopcast_publisher.adapters.platforms.base import PostMedia, PublishFailure
from hopcast_publisher.adapters.platforms.egress import EgressPolicy
from hopcast_publisher.adapters.platforms.media_fetch import MediaFetcher, image_size
from hopcast_publisher.testing import LOOPBACK_EGRESS
from hopcast_publisher.testing_media import image_bytes
from hopcast_shared.contract import PublishFailureReason


@pytest.fixture
async def fetcher() -> MediaFetcher:
    fetcher = MediaFetcher(LOOPBACK_EGRESS, timeout_s=2.0, retry_delay_s=0.01)
    yield fetcher  # type: ignore[misc]
    await fetcher.close()


async def test_the_type_comes_from_the_bytes_not_the_header(fetcher: MediaFetcher, media_host) -> None:
    url = media_host.put("/photo.png", image_bytes(640, 480, kind="JPEG"), content_type="image/png")
    fetched = await fetcher.fetch(1, 1, PostMedia(url, "a cup", "image/png"), cap=1_000_000)
    assert fetched.facts.mime_type == "image/jpeg"
    assert (fetched.facts.width, fetched.facts.height) == (640, 480)
    assert fetched.facts.alt_text == "a cup" and len(fetched.sha256) == 64


async def test_a_declared_video_that_is_an_image_is_rejected(fetcher: MediaFetcher, media_host) -> None:
    url = media_host.put("/clip.mp4", image_bytes(10, 10), content_type="video/mp4")
    with pytest.raises(PublishFailure) as failure:
        await fetcher.fetch(2, 3, PostMedia(url, None, "video/mp4"), cap=1_000_000)
    assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
    assert failure.value.detail == "media 2 of 3: declared video/mp4, but its bytes are image/png"


async def test_bytes_of_no_known_type_are_rejected(fetcher: MediaFetcher, media_host) -> None:
    url = media_host.put("/page.png", b"<html>not an image</html>", content_type="image/png")
    with pytest.raises(PublishFailure) as failure:
        await fetcher.fetch(1, 1, PostMedia(url), cap=1_000_000)
    assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
    assert "not an image or video of a known type" in failure.value.detail


async def test_a_truncated_image_is_rejected(fetcher: MediaFetcher, media_host) -> None:
    url = media_host.put("/cut.png", image_bytes(50, 50)[:20])
    with pytest.raises(PublishFailure) as failure:
        await fetcher.fetch(1, 1, PostMedia(url), cap=1_000_000)
    assert "do not read as one" in failure.value.detail


async def test_the_cap_takes_exactly_its_bytes_and_refuses_one_more(fetcher: MediaFetcher, media_host) -> None:
    at = media_host.put("/at.png", image_bytes(100, 100, pad_to=50_000))
    over = media_host.put("/over.png", image_bytes(100, 100, pad_to=50_001))
    assert (await fetcher.fetch(1, 2, PostMedia(at), cap=50_000)).facts.size == 50_000
    with pytest.raises(PublishFailure) as failure:
        await fetcher.fetch(2, 2, PostMedia(over), cap=50_000)
    assert failure.value.detail == "media 2 of 2: more than 50,000 bytes, over the limit of 50,000"


async def test_redirects_stay_on_their_host(fetcher: MediaFetcher, media_host) -> None:
    media_host.put("/real.png", image_bytes(8, 8))
    media_host.server.redirects["/moved.png"] = "/real.png"
    media_host.server.redirects["/away.png"] = "http://127.0.0.2:9/real.png"
    fetched = await fetcher.fetch(1, 1, PostMedia(f"{media_host.url}/moved.png"), cap=10_000)
    assert fetched.facts.width == 8
    with pytest.raises(PublishFailure) as failure:
        await fetcher.fetch(1, 1, PostMedia(f"{media_host.url}/away.png"), cap=10_000)
    assert failure.value.reason is PublishFailureReason.MEDIA_REJECTED
    assert "redirected it to another host" in failure.value.detail
    assert media_host.server.hits.get("/real.png") == 1


async def test_a_missing_file_is_rejected_without_its_url(fetcher: MediaFetcher, media_host) -> None:
    with pytest.raises(PublishFailure) as failure:
        await fetcher.fetch(1, 1, PostMedia(f"{media_host.url}/gone.png?signature=s3cr3t"), cap=10_000)
    assert failure.value.detail == "media 1 of 1: 127.0.0.1 answered 404"
    assert "s3cr3t" not in failure.value.detail


async def test_the_production_guard_refuses_a_loopback_media_host(media_host) -> None:
    fetcher = MediaFetcher(EgressPolicy(), timeout_s=2.0)
    url = media_host.put("/a.png", image_bytes(8, 8))
    try:
        with pytest.raises(PublishFailure) as failure:
            await fetcher.fetch(1, 1, PostMedia(url), cap=10_000)
    finally:
        await fetcher.close()
    assert failure.value.reason is PublishFailureReason.EGRESS_REFUSED
    assert media_host.server.hits == {}  # nothing was requested
    assert fetcher.fetched == 0


def test_exif_orientation_turns_width_and_height() -> None:
    image = Image.new("RGB", (300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert image_size(buffer.getvalue()) == ("image/jpeg", 200, 300)


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    small = image_bytes(1, 1)
    # A PNG whose header claims 100,000 x 100,000 pixels (its IHDR's CRC made right): read,
    # never decoded.
    ihdr = b"IHDR" + (100_000).to_bytes(4, "big") * 2 + small[24:29]
    bomb = small[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + small[33:]
    with pytest.raises(ValueError, match="more pixels than any platform takes"):
        image_size(bomb)
