"""A post's media judged before any upload (issue 18): the real type from the bytes, and each
platform's documented limits at their edges (exactly at the limit passes, one over fails)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hopcast_publisher.adapters.platforms.mastodon_instance import limits_from
from hopcast_publisher.domain.media import (
    BLUESKY,
    LINKEDIN,
    MASTODON_DEFAULT,
    TWITTER,
    MediaFacts,
    MediaLimits,
    media_refusal,
    sniff_type,
)

MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF89a": "image/gif",
    b"GIF87a": "image/gif",
    b"\x1a\x45\xdf\xa3": "video/webm",
}


@given(st.sampled_from(sorted(MAGIC)), st.binary(max_size=64))
def test_a_type_is_known_by_its_first_bytes_whatever_follows(magic: bytes, rest: bytes) -> None:
    assert sniff_type(magic + rest) == MAGIC[magic]


# An MP4 box size of exactly the EBML magic (a 440 MB ftyp box) is the one overlap with a WebM
# whose next bytes spell ftyp; neither is a real file, and the magic at byte 0 wins.
@given(st.binary(min_size=4, max_size=4).filter(lambda b: b != b"\x1a\x45\xdf\xa3"), st.binary(max_size=32))
def test_webp_and_mp4_are_known_by_their_container(size: bytes, rest: bytes) -> None:
    assert sniff_type(b"RIFF" + size + b"WEBP" + rest) == "image/webp"
    assert sniff_type(size + b"ftypisom" + rest) == "video/mp4"
    assert sniff_type(size + b"ftypqt  " + rest) == "video/quicktime"


@given(st.binary(max_size=64))
def test_bytes_without_a_known_signature_are_no_type(data: bytes) -> None:
    known = (
        any(data.startswith(m) for m in MAGIC)
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        or data[4:8] == b"ftyp"
    )
    assert (sniff_type(data) is None) is not known


def image(size: int = 1000, width: int = 100, height: int = 100, mime: str = "image/png", alt: str = "") -> MediaFacts:
    return MediaFacts(mime, size, width, height, alt)


def video(size: int = 1000, mime: str = "video/mp4") -> MediaFacts:
    return MediaFacts(mime, size)


@pytest.mark.parametrize(
    ("limits", "size"),
    [(BLUESKY, 1_000_000), (TWITTER, 5 * 1024 * 1024), (MASTODON_DEFAULT, 16 * 1024 * 1024)],
)
def test_image_bytes_at_the_limit_pass_and_one_over_fails(limits: MediaLimits, size: int) -> None:
    assert media_refusal(limits, [image(size)]) is None
    refusal = media_refusal(limits, [image(size + 1)])
    assert refusal == (f"media 1 of 1: {size + 1:,} bytes, over the limit of {size:,} on {limits.platform}")


def test_x_takes_larger_gifs_and_videos_alone() -> None:
    assert media_refusal(TWITTER, [image(15 * 1024 * 1024, mime="image/gif")]) is None
    assert "over the limit of 15,728,640" in (
        media_refusal(TWITTER, [image(15 * 1024 * 1024 + 1, mime="image/gif")]) or ""
    )
    assert media_refusal(TWITTER, [video(512 * 1024 * 1024)]) is None
    assert "over the limit" in (media_refusal(TWITTER, [video(512 * 1024 * 1024 + 1)]) or "")
    assert "takes one or the other" in (media_refusal(TWITTER, [image(), video()]) or "")
    assert "takes a GIF alone" in (media_refusal(TWITTER, [image(mime="image/gif"), image()]) or "")
    assert media_refusal(TWITTER, [video(), video()]) == "2 videos, over TWITTER's limit of 1 a post"


@pytest.mark.parametrize(("limits", "most"), [(BLUESKY, 4), (TWITTER, 4), (LINKEDIN, 20), (MASTODON_DEFAULT, 4)])
def test_image_count_at_the_limit_passes_and_one_over_fails(limits: MediaLimits, most: int) -> None:
    assert media_refusal(limits, [image()] * most) is None
    assert media_refusal(limits, [image()] * (most + 1)) == (
        f"{most + 1} images, over {limits.platform}'s limit of {most} a post"
    )


def test_pixels_and_sides_at_their_edges() -> None:
    # LinkedIn: at most 36,152,320 pixels.
    assert media_refusal(LINKEDIN, [image(width=36_152_320, height=1)]) is None
    assert "36,152,321 pixels, over the limit of 36,152,320" in (
        media_refusal(LINKEDIN, [image(width=36_152_321, height=1)]) or ""
    )
    assert media_refusal(TWITTER, [image(width=8192, height=4)]) is None
    assert "8193x4, a side over the limit of 8192" in (media_refusal(TWITTER, [image(width=8193, height=4)]) or "")
    assert "8192x3, a side under the minimum of 4" in (media_refusal(TWITTER, [image(width=8192, height=3)]) or "")
    assert media_refusal(MASTODON_DEFAULT, [image(width=5760, height=5760)]) is None  # 33,177,600
    assert "over the limit of 33,177,600" in (media_refusal(MASTODON_DEFAULT, [image(width=5761, height=5760)]) or "")


@pytest.mark.parametrize(("limits", "most"), [(TWITTER, 1000), (LINKEDIN, 4086), (MASTODON_DEFAULT, 1500)])
def test_alt_text_at_the_limit_passes_and_one_over_fails(limits: MediaLimits, most: int) -> None:
    assert media_refusal(limits, [image(alt="a" * most)]) is None
    assert f"alt text of {most + 1:,} characters, over the limit of {most:,}" in (
        media_refusal(limits, [image(alt="a" * (most + 1))]) or ""
    )


def test_types_a_platform_does_not_take_are_named() -> None:
    assert media_refusal(BLUESKY, [image(), video()]) == (
        "media 2 of 2: type video/mp4 is not taken (videos: none) on BLUESKY"
    )
    assert "type image/webp is not taken" in (media_refusal(LINKEDIN, [image(mime="image/webp")]) or "")


def test_a_mastodon_instance_says_its_own_media_limits() -> None:
    body = {
        "configuration": {
            "statuses": {"max_characters": 500, "max_media_attachments": 6},
            "media_attachments": {
                "supported_mime_types": ["image/png", "video/mp4"],
                "image_size_limit": 2_000_000,
                "image_matrix_limit": 1_000_000,
                "description_limit": 200,
            },
        }
    }
    limits = limits_from(body)
    assert limits is not None
    media = replace(limits.media, where=" on m.example")
    assert media.max_images == 6 and media.image_types == frozenset({"image/png"})
    assert media_refusal(media, [image(2_000_000, 1000, 1000)] * 6) is None
    assert media_refusal(media, [image(2_000_001)]) == (
        "media 1 of 1: 2,000,001 bytes, over the limit of 2,000,000 on MASTODON on m.example"
    )
    assert "type image/jpeg is not taken" in (media_refusal(media, [image(mime="image/jpeg")]) or "")
    assert "alt text of 201 characters" in (media_refusal(media, [image(alt="x" * 201)]) or "")
    # An instance that does not say keeps Mastodon's defaults.
    bare = limits_from({"configuration": {"statuses": {"max_characters": 500}}})
    assert bare is not None and bare.media == MASTODON_DEFAULT


@given(
    st.sampled_from([BLUESKY, TWITTER, LINKEDIN, MASTODON_DEFAULT]),
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=1, max_value=4),
)
def test_a_file_is_refused_exactly_when_it_is_over_a_limit(limits: MediaLimits, offset: int, count: int) -> None:
    # Around each limit: the bytes of an image, the number of images.
    assert limits.image_bytes is not None
    size = limits.image_bytes + offset
    files = [image(size)] * min(count, limits.max_images)
    refusal = media_refusal(limits, files)
    assert (refusal is not None) == (offset > 0)
    if refusal is not None:
        assert refusal.startswith(f"media 1 of {len(files)}: {size:,} bytes")
    assert (media_refusal(limits, [image()] * (limits.max_images + offset)) is not None) == (offset > 0)


def test_a_webm_whose_next_bytes_spell_ftyp_is_still_webm() -> None:
    # Found by Hypothesis: the EBML magic, then "ftyp" where an MP4 keeps its box type.
    assert sniff_type(b"\x1a\x45\xdf\xa3ftypisom") == "video/webm"
