"""Producers write event message values with `event_json` (cheaper than building the envelope
model): they must be what the contract's `new_event(...).to_json()` makes, for every type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from hopcast_shared.contract import (
    EVENT_TYPES,
    Angle,
    Envelope,
    Platform,
    PostPublished,
    PostPublishFailed,
    PublishFailureReason,
    RunOutcome,
    ScheduleRunCompleted,
    event_json,
    new_event,
    new_event_ids,
)
from hopcast_shared.contract.events import EventData
from hopcast_shared.contract.examples import example_data

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
    *(spec.model.model_validate(example_data(name)) for name, spec in EVENT_TYPES.items()),
]
SOURCE = "hopcast/publisher"
# Texts that JSON must escape, as an upstream producer may send them.
ODD_TEXT = 'run "7" \\ é\n\t\x01'


@pytest.mark.parametrize("data", EVENTS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("correlation", [str(ids[2]), ODD_TEXT], ids=["uuid", "odd-text"])
@pytest.mark.parametrize("time", [NOW, NOW.replace(microsecond=0)], ids=["micros", "whole-second"])
@pytest.mark.parametrize("causation", [str(ids[7]), None], ids=["caused", "uncaused"])
def test_event_json_is_what_new_event_makes_byte_for_byte(
    data: EventData, correlation: str, time: datetime, causation: str | None
) -> None:
    event_id, org = uuid.uuid4(), uuid.uuid4()
    expected = new_event(
        data,
        organization_id=org,
        source=SOURCE,
        correlation_id=correlation,
        causation_id=causation,
        time=time,
        event_id=event_id,
    ).to_json()
    made = event_json(
        data,
        event_id=event_id,
        organization_id=org,
        source=SOURCE,
        correlation_id=correlation,
        causation_id=causation,
        time=time,
    )
    assert made == expected
    assert Envelope.parse(made).data_as(type(data)) == data


def test_event_ids_are_random_version_4_uuids_as_text() -> None:
    made = new_event_ids(1000)
    parsed = [uuid.UUID(text) for text in made]
    assert [str(u) for u in parsed] == made  # canonical text, as str(uuid4()) writes it
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)
    assert len(set(made)) == 1000
