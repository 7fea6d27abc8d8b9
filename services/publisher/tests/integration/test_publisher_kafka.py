"""The publisher through Kafka alone, as `make up` runs it: given these events on the
topics, expect those events on publisher.events, analytics.events and publisher.dlq."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hopcast_shared.contract.examples import example_event
from hopcast_shared.dlq import read_dead_letters
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import eventually, read_events, read_topic, send_event
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER, UPSTREAM, dlq_topic

pytestmark = pytest.mark.integration


async def test_through_kafka_default_then_fallback_partial_runs_and_no_plaintext_anywhere(
    publisher: ServiceRuntime,
    producer: AIOKafkaProducer,
    kafka: KafkaSettings,
    caplog: pytest.LogCaptureFixture,
    transit_token: Callable[[str, str, str], str],
) -> None:
    caplog.set_level(logging.DEBUG)
    org, brand = str(uuid.uuid4()), str(uuid.uuid4())
    secrets = {name: f"plain-{name}-{uuid.uuid4().hex}" for name in ("a", "b", "leak")}

    def event(type_name: str, **changes: Any) -> Any:
        return example_event(type_name, organization_id=org, **changes)

    async def upstream(*events: Any) -> None:
        for e in events:
            await send_event(producer, kafka, UPSTREAM, e)

    default, other = str(uuid.uuid4()), str(uuid.uuid4())
    await upstream(
        event("OrganizationCreated"),
        event("BrandProfileCreated", brand_profile_id=brand),
        *(
            event(
                "SocialAccountConnected",
                social_account_id=account,
                platform="MASTODON",
                access_token=transit_token(secrets[name], org, account),
                refresh_token=None,
            )
            for account, name in ((default, "a"), (other, "b"))
        ),
        event("BrandAccountLinked", brand_profile_id=brand, social_account_id=other, is_default=False),
        event("BrandAccountLinked", brand_profile_id=brand, social_account_id=default, is_default=True),
    )
    # Upstream facts and pending posts travel on different topics: let the links land first.
    await eventually(lambda: _count(publisher, "SELECT count(*) FROM brand_accounts WHERE is_default", 1))

    def pending(platforms: list[str]) -> tuple[Any, Any]:
        pending_id, run_id = str(uuid.uuid4()), str(uuid.uuid4())
        created = event(
            "PendingPostCreated", pending_post_id=pending_id, run_id=run_id, brand_profile_id=brand, platforms=platforms
        )
        debited = event("CreditsDebited", pending_post_id=pending_id, run_id=run_id)
        return created, debited

    # 1. The debit arrives first; MASTODON goes out on the default account, BLUESKY has none.
    first, first_debit = pending(["MASTODON", "BLUESKY"])
    await send_event(producer, kafka, BILLING, first_debit)
    await send_event(producer, kafka, CONTENT, first)
    completed = await read_events(kafka, kafka.topic(ANALYTICS), expect=1, event_type="ScheduleRunCompleted")
    assert [(e["data"]["run_id"], e["data"]["outcome"]) for e in completed] == [
        (first.data["run_id"], "PARTIALLY_PUBLISHED")
    ]
    published = await read_events(kafka, kafka.topic(PUBLISHER), expect=1, event_type="PostPublished")
    assert [(e["data"]["platform"], e["data"]["social_account_id"]) for e in published] == [("MASTODON", default)]
    assert published[0]["correlationid"] == first.data["run_id"]
    failed = await read_events(kafka, kafka.topic(PUBLISHER), expect=1, event_type="PostPublishFailed")
    assert [(e["data"]["platform"], e["data"]["reason"]) for e in failed] == [("BLUESKY", "NO_ACCOUNT_FOR_PLATFORM")]
    assert len(await read_events(kafka, kafka.topic(ANALYTICS), expect=1, event_type="PostPublished")) == 1

    # 2. A second debit event for the same pending post changes nothing.
    await send_event(producer, kafka, BILLING, event("CreditsDebited", **first_debit.data))
    # 3. The default account is deleted: the next post goes to the other linked account.
    await upstream(event("SocialAccountDeleted", social_account_id=default))
    await eventually(lambda: _count(publisher, "SELECT count(*) FROM social_accounts WHERE deleted_at IS NOT NULL", 1))
    second, second_debit = pending(["MASTODON"])
    await send_event(producer, kafka, CONTENT, second)
    await send_event(producer, kafka, BILLING, second_debit)
    completed = await read_events(kafka, kafka.topic(ANALYTICS), expect=2, event_type="ScheduleRunCompleted")
    assert sorted(e["data"]["outcome"] for e in completed) == ["PARTIALLY_PUBLISHED", "PUBLISHED"]
    published = await read_events(kafka, kafka.topic(PUBLISHER), expect=2, event_type="PostPublished")
    assert [(e["data"]["run_id"], e["data"]["social_account_id"]) for e in published] == [
        (first.data["run_id"], default),
        (second.data["run_id"], other),
    ]  # and still one post for the first run: the second debit published nothing

    # 4. A plaintext token is refused to publisher.dlq and shows up nowhere.
    leak = json.loads(event("SocialAccountConnected", social_account_id=str(uuid.uuid4())).to_json())
    leak["data"]["access_token"] = secrets["leak"]
    await producer.send_and_wait(kafka.topic(UPSTREAM), json.dumps(leak).encode(), key=org.encode())
    letters = await eventually(lambda: _letters(kafka))
    assert [(d.event_id, d.event_type, d.error_kind) for d in letters] == [
        (leak["id"], "SocialAccountConnected", "data")
    ]
    # 5. Account a's ciphertext sent for another account: dead-lettered as not that account's.
    moved = event(
        "SocialAccountConnected",
        social_account_id=str(uuid.uuid4()),
        platform="MASTODON",
        access_token=transit_token(secrets["a"], org, default),
        refresh_token=None,
    )
    await upstream(moved)
    letters = await eventually(lambda: _letters_beyond(kafka, 1))
    assert {(d.event_id, d.error_kind) for d in letters} == {
        (leak["id"], "data"),
        (str(moved.id), "token_not_for_account"),
    }
    assert await _count(publisher, "SELECT count(*) FROM social_accounts", 2)

    everything = b""
    for topic in (UPSTREAM, CONTENT, BILLING, PUBLISHER, ANALYTICS, dlq_topic("publisher")):
        for record in await read_topic(kafka, kafka.topic(topic), expect=10_000, within=1.0):
            everything += record.value or b""
    database = await _all_text(publisher)
    # Every record the service logged, at every level (aiokafka's own debug lines are left
    # out: they include what the test producer sent, and services log aiokafka at WARNING).
    formatter = logging.Formatter("%(name)s %(message)s")
    logs = "\n".join(formatter.format(r) for r in caplog.records if not r.name.startswith("aiokafka"))
    assert "dead-lettered SocialAccountConnected" in logs
    for name, secret in secrets.items():
        assert secret not in logs, f"token {name} in the logs"
        assert secret not in database, f"token {name} in the database"
        if name != "leak":  # the leak is on upstream.events, where the sender put it
            assert secret.encode() not in everything, f"token {name} in an event"
    dlq = b"".join(r.value or b"" for r in await read_topic(kafka, kafka.topic(dlq_topic("publisher")), expect=1))
    assert secrets["leak"].encode() not in dlq


async def _count(runtime: ServiceRuntime, sql: str, expected: int) -> bool:
    return bool(await runtime.db.pool.fetchval(sql) == expected)


async def _letters(kafka: KafkaSettings) -> list[Any]:
    return await read_dead_letters(kafka, "publisher", timeout_s=0.5)


async def _letters_beyond(kafka: KafkaSettings, count: int) -> list[Any]:
    letters = await _letters(kafka)
    return letters if len(letters) > count else []


async def _all_text(runtime: ServiceRuntime) -> str:
    parts = []
    for t in await runtime.db.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
        for row in await runtime.db.pool.fetch(f'SELECT * FROM "{t["tablename"]}"'):
            parts += [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row.values()]
    return "\n".join(parts)
