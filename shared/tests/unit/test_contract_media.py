"""Media in the contract (issue 18): `media` with alt text and type, older `media_urls` still
read as media without alt text, and the platforms a pending post leaves out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from hopcast_shared.contract import LeftOutReason, MaterialSubmitted, PendingPostCreated, Platform
from hopcast_shared.contract.examples import example_event


def example_data(type_name: str, **changes: Any) -> dict[str, Any]:
    data = dict(example_event(type_name).data)
    data.update(changes)
    return data


@pytest.mark.parametrize("model", [MaterialSubmitted, PendingPostCreated])
def test_media_urls_of_an_older_producer_are_read_as_media_without_alt_text(model: Any) -> None:
    data = example_data(model.__name__, media_urls=["https://cdn.example/a.png", "https://cdn.example/b.mp4"])
    data.pop("media")
    parsed = model.model_validate_json(json.dumps(data))
    assert [(m.url, m.alt_text, m.mime_type) for m in parsed.media] == [
        ("https://cdn.example/a.png", None, None),
        ("https://cdn.example/b.mp4", None, None),
    ]
    # Never written back: the event's JSON names media only.
    assert "media_urls" not in parsed.model_dump(mode="json")


def test_media_given_wins_over_media_urls() -> None:
    data = example_data(
        "MaterialSubmitted",
        media=[{"url": "https://cdn.example/new.jpg", "alt_text": "A new picture"}],
        media_urls=["https://cdn.example/old.jpg"],
    )
    parsed = MaterialSubmitted.model_validate(data)
    assert [(m.url, m.alt_text) for m in parsed.media] == [("https://cdn.example/new.jpg", "A new picture")]


def test_a_material_of_media_alone_is_valid_and_keeps_alt_text_and_type() -> None:
    media = [{"url": "https://cdn.example/a.webp", "alt_text": "Two cups on a table", "mime_type": "image/webp"}]
    parsed = MaterialSubmitted.model_validate(example_data("MaterialSubmitted", type="IMAGE", body="", media=media))
    assert parsed.model_dump(mode="json")["media"] == media


def test_platforms_left_out_carry_their_reason_and_default_to_none() -> None:
    data = example_data("PendingPostCreated")
    data.pop("platforms_left_out")
    assert PendingPostCreated.model_validate(data).platforms_left_out == []
    data["platforms_left_out"] = [{"platform": "INSTAGRAM", "reason": "MEDIA_REQUIRED"}]
    [left_out] = PendingPostCreated.model_validate(data).platforms_left_out
    assert (left_out.platform, left_out.reason) == (Platform.INSTAGRAM, LeftOutReason.MEDIA_REQUIRED)


@pytest.mark.parametrize(
    "left_out",
    [
        [{"platform": "BLUESKY", "reason": "MEDIA_REQUIRED"}],  # also in platforms
        [{"platform": "INSTAGRAM", "reason": "MEDIA_REQUIRED"}] * 2,
        [{"platform": "INSTAGRAM", "reason": "NO_REASON"}],
    ],
)
def test_platforms_left_out_that_contradict_the_post_are_rejected(left_out: list[dict[str, str]]) -> None:
    with pytest.raises(ValidationError):
        PendingPostCreated.model_validate(example_data("PendingPostCreated", platforms_left_out=left_out))
