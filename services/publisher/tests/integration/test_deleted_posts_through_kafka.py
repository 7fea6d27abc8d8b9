"""Issue 22 through Kafka, as `make up` runs the publisher: a published post's PostPublished
carries its draft's hashtags, media and angle reason; upstream's PostDeleted and PostRestored
apply to the organization's own post, and another organization's is dead-lettered on
publisher.dlq saying whose it is."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hopcast_shared.contract.examples import example_event
from hopcast_shared.dlq import read_dead_letters
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import eventually, read_events, send_event
from hopcast_shared.topics import BILLING, CONTENT, PUBLISHER, UPSTREAM

pytestmark = pytest.mark.integration

MEDIA = [{"url": "https://cdn.example/roast.jpg", "alt_text": "Beans cooling in a tray", "mime_type": "image/jpeg"}]


async def test_posts_deleted_and_restored_through_kafka(
    publisher: ServiceRuntime,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    transit_token: Callable[[str, str, str], str],
) -> None:
    org, other, brand, account = (str(uuid.uuid4()) for _ in range(4))

    def event(type_name: str, organization: str = org, **changes: Any) -> Any:
        return example_event(type_name, organization_id=organization, **changes)

    token = transit_token("plain-access", org, account)
    for e in (
        event("OrganizationCreated"),
        event("OrganizationCreated", other),
        event("BrandProfileCreated", brand_profile_id=brand),
        event("SocialAccountConnected", social_account_id=account, platform="MASTODON", access_token=token),
        event("BrandAccountLinked", brand_profile_id=brand, social_account_id=account, is_default=True),
    ):
        await send_event(producer, kafka, UPSTREAM, e)
    await eventually(lambda: _count(publisher, "SELECT count(*) FROM brand_accounts", 1))
    pending, run = str(uuid.uuid4()), str(uuid.uuid4())
    drafted = event(
        "PendingPostCreated",
        pending_post_id=pending,
        run_id=run,
        brand_profile_id=brand,
        platforms=["MASTODON"],
        media=MEDIA,
    )
    await send_event(producer, kafka, CONTENT, drafted)
    await send_event(producer, kafka, BILLING, event("CreditsDebited", pending_post_id=pending, run_id=run))

    [published] = await read_events(kafka, kafka.topic(PUBLISHER), expect=1, event_type="PostPublished")
    data = published["data"]
    assert (data["hashtags"], data["media"], data["angle_reason"]) == (
        drafted.data["hashtags"],
        MEDIA,
        drafted.data["angle_reason"],
    )
    post_id = data["post_id"]
    deleted = f"SELECT count(*) FROM posts WHERE id = '{post_id}' AND deleted_at IS NOT NULL"

    forged = event("PostDeleted", other, post_id=post_id)
    await send_event(producer, kafka, UPSTREAM, forged)
    letters = await eventually(lambda: read_dead_letters(kafka, "publisher", timeout_s=0.5))
    assert [(d.event_id, d.error) for d in letters] == [
        (str(forged.id), f"PermanentError: post {post_id} belongs to another organization")
    ]
    await send_event(producer, kafka, UPSTREAM, event("PostDeleted", post_id=post_id))
    await eventually(lambda: _count(publisher, deleted, 1))
    await send_event(producer, kafka, UPSTREAM, event("PostRestored", post_id=post_id))
    await eventually(lambda: _count(publisher, deleted, 0))
    assert len(await read_dead_letters(kafka, "publisher", timeout_s=0.5)) == 1


async def _count(runtime: ServiceRuntime, sql: str, expected: int) -> bool:
    return bool(await runtime.db.pool.fetchval(sql) == expected)
