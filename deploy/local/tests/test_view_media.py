"""The live view marks media (issue 18): a run whose post has images says so in its log line, in
its platforms cell and in the posts-per-platform table; left-out platforms show as such. And the
demo's plan gives its coffee and studio posts pictures with alt text."""

from __future__ import annotations

import json
import uuid
from typing import Any

from rich.console import Console

from hopcast_shared.contract import Envelope, parse_event
from hopcast_shared.contract.examples import example_event
from hopcast_shared.crypto import Keyring
from hopcast_shared.settings import KafkaSettings
from hopcast_stack.demo import build_plan
from hopcast_stack.upstream import Upstream
from hopcast_stack.view import MEDIA_MARK, Board, Message, media_marker, render

ORG = str(uuid.uuid4())
PHOTO = {"url": "https://cdn.example/a.jpg", "alt_text": "Two cups", "mime_type": "image/jpeg"}


def message(topic: str, event: Envelope) -> Message:
    return Message(topic, json.loads(event.to_json()), {})


def played(**draft: Any) -> tuple[Board, str]:
    """A run drafted with `draft`'s changes, published on BLUESKY and INSTAGRAM, ended PUBLISHED."""
    board = Board()
    run_id, pending = str(uuid.uuid4()), str(uuid.uuid4())
    common: dict[str, Any] = {"organization_id": ORG, "correlation_id": run_id}
    ids = {"run_id": run_id, "pending_post_id": pending}
    events = [
        ("content.events", example_event("PendingPostCreated", **ids, **common, **draft)),
        ("publisher.events", example_event("PostPublished", platform="BLUESKY", **ids, **common)),
        ("publisher.events", example_event("PostPublished", platform="INSTAGRAM", **ids, **common)),
        ("analytics.events", example_event("ScheduleRunCompleted", run_id=run_id, outcome="PUBLISHED", **common)),
    ]
    for topic, event in events:
        board.apply(message(topic, event))
    return board, run_id


def test_media_markers_count_images_and_videos() -> None:
    assert media_marker([]) == ""
    assert media_marker([PHOTO]) == "[1 image]"
    clip = {"url": "https://cdn.example/b.MP4?x=1", "alt_text": None, "mime_type": None}
    assert media_marker([PHOTO, PHOTO, clip]) == "[2 images, 1 video]"


def test_a_run_with_an_image_is_marked_in_its_line_cell_and_the_platform_counts() -> None:
    board, _ = played(platforms=["BLUESKY", "INSTAGRAM"], media=[PHOTO], texts={})
    [line] = board.take_log()
    assert line.endswith(f"(BLUESKY ok, INSTAGRAM ok) {MEDIA_MARK} [1 image]"), line
    assert board.published_with_media == {"BLUESKY": 1, "INSTAGRAM": 1}
    console = Console(width=160, record=True)
    console.print(render(board))
    text = console.export_text()
    assert f"{MEDIA_MARK} [1 image]" in text and f"with {MEDIA_MARK}" in text


def test_a_run_without_media_has_no_marker_and_left_out_platforms_show() -> None:
    board, _ = played(
        platforms=["BLUESKY"],
        media=[],
        texts={},
        platforms_left_out=[{"platform": "INSTAGRAM", "reason": "MEDIA_REQUIRED"}],
    )
    [line] = board.take_log()
    assert MEDIA_MARK not in line and "INSTAGRAM left out: media_required" in line
    assert board.published_with_media == {}


def test_the_demo_posts_pictures_with_alt_text_on_bluesky_and_instagram() -> None:
    upstream = Upstream(KafkaSettings(topic_prefix="t."), keyring=Keyring.generate())
    plan = build_plan(upstream)
    materials: list[Any] = [parse_event(e.to_json())[1] for e in plan.events if e.type == "MaterialSubmitted"]
    with_media = [m for m in materials if m.media]
    assert len(with_media) == 11 and all(m.media[0].alt_text for m in with_media)
    # Every brand on a schedule with INSTAGRAM or BLUESKY has only materials with pictures.
    brands_with_pictures = {m.brand_profile_id for m in with_media}
    schedules: list[Any] = [parse_event(e.to_json())[1] for e in plan.events if e.type == "ScheduleCreated"]
    for schedule in schedules:
        if {"INSTAGRAM", "BLUESKY"} & {p.value for p in schedule.platforms}:
            assert schedule.brand_profile_id in brands_with_pictures
