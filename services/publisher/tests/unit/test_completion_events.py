"""The publishing loop writes its events' message values itself (cheaper than building the
envelope model): they must be what the contract's `new_event(...).to_json()` makes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from hopcast_publisher.publishing import SOURCE, event_json, new_event_ids, post_id_for
from hopcast_shared.contract import (
    Angle,
    Envelope,
    Platform,
    PostPublished,
    PostPublishFailed,
    PublishFailureReason,
    RunOutcome,
    ScheduleRunCompleted,
    new_event,
)
from hopcast_shared.contract.events import EventData

NOW = datetime(2027, 3, 14, 7, 0, 0, 123456, tzinfo=UTC)
ids = [uuid.uuid4() for _ in range(8)]

EVENTS: list[EventData] = [
    PostPublished(
        post_id=ids[0],
        pending_post_id=ids[1],
        run_id=ids[2],
        material_id=ids[3],
        schedule_id=ids[4],
        brand_profile_id=ids[5],
        social_account_id=ids[6],
        platform=Platform.BLUESKY,
        angle=Angle.STORYTELLING,
        external_id='at://did:plc:x/app.bsky.feed.post/3k "quoted" é',
        external_url="https://bsky.app/profile/x/post/3k",
        published_at=NOW.replace(microsecond=0),
    ),
    PostPublishFailed(
        pending_post_id=ids[1],
        run_id=ids[2],
        platform=Platform.MASTODON,
        reason=PublishFailureReason.PLATFORM_REJECTED,
        detail='422 {"error": "Validation failed: Text is too long"}\n\ttabs, ünïcode, \\ backslash',
    ),
    ScheduleRunCompleted(
        run_id=ids[2],
        schedule_id=ids[4],
        brand_profile_id=ids[5],
        outcome=RunOutcome.PARTIALLY_PUBLISHED,
        due_at=NOW.replace(second=0, microsecond=0),
        completed_at=NOW,
    ),
]


@pytest.mark.parametrize("data", EVENTS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("time", [NOW, NOW.replace(microsecond=0)], ids=["micros", "whole-second"])
@pytest.mark.parametrize("causation", [str(ids[7]), None], ids=["caused", "uncaused"])
def test_event_json_is_what_new_event_makes_byte_for_byte(
    data: EventData, time: datetime, causation: str | None
) -> None:
    event_id, org = uuid.uuid4(), uuid.uuid4()
    expected = new_event(
        data,
        organization_id=org,
        source=SOURCE,
        correlation_id=str(ids[2]),
        causation_id=causation,
        time=time,
        event_id=event_id,
    ).to_json()
    made = event_json(
        data, event_id=event_id, organization_id=org, correlation_id=str(ids[2]), causation_id=causation, time=time
    )
    assert made == expected
    assert Envelope.parse(made).data_as(type(data)) == data


def test_a_post_id_is_the_same_for_a_pending_post_and_platform_and_only_for_it() -> None:
    pending = uuid.uuid4()
    assert post_id_for(pending, "BLUESKY") == post_id_for(pending, "BLUESKY")
    assert post_id_for(pending, "BLUESKY") != post_id_for(pending, "MASTODON")
    assert post_id_for(pending, "BLUESKY") != post_id_for(uuid.uuid4(), "BLUESKY")
    assert post_id_for(pending, "BLUESKY").version == 5


def test_event_ids_are_random_version_4_uuids_as_text() -> None:
    made = new_event_ids(1000)
    parsed = [uuid.UUID(text) for text in made]
    assert [str(u) for u in parsed] == made  # canonical text, as str(uuid4()) writes it
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(made)) == 1000
