"""When handling fails, on the real broker and database: a malformed message is dead-lettered and
the consumer goes on, transient failures and unique violations are retried, a handler that keeps
failing or refuses for good dead-letters (and a replay after the fix works), and an unreachable
database leaves the message unacknowledged. Through the test service of conftest.py
("ledgerlet").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from hopcast_shared.dlq import read_dead_letters, replay_stored, stored_dead_letters
from hopcast_shared.handling import PermanentError
from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import eventually
from hopcast_shared.topics import UPSTREAM

pytestmark = pytest.mark.integration


async def test_a_malformed_message_lands_in_the_dlq_and_the_consumer_goes_on(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    org = uuid.uuid4()
    key = str(org).encode()
    await ledgerlet.send(producer, kafka, b"this is not json", key)
    bad = json.loads(ledgerlet.created(org, "x").to_json())
    del bad["data"]["name"]  # a required field is missing
    await ledgerlet.send(producer, kafka, json.dumps(bad).encode(), key)
    await ledgerlet.send(producer, kafka, b"\xff\xfe binary", key)
    await ledgerlet.send(producer, kafka, ledgerlet.created(org, "Good").to_json(), key)

    assert await eventually(lambda: ledgerlet.orgs(service.db)) == ["Good"]
    letters = await eventually(lambda: ledgerlet.letters(kafka, 3))
    kinds = sorted(letter.error_kind for letter in letters)
    assert kinds == ["decode", "decode", "data"] or kinds == sorted(["decode", "data", "decode"])
    missing = next(letter for letter in letters if letter.error_kind == "data")
    assert missing.event_id == bad["id"] and missing.event_type == "OrganizationCreated"
    assert "name" in missing.error
    assert missing.source.topic == kafka.topic(UPSTREAM)
    assert missing.original_json["data"] == bad["data"]


async def test_transient_failures_are_retried_then_succeed(
    service: ServiceRuntime, behaviour: Any, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    behaviour.fail_first = 2
    org = uuid.uuid4()
    await ledgerlet.send(producer, kafka, ledgerlet.created(org, "Flaky").to_json(), str(org).encode())
    assert await eventually(lambda: ledgerlet.orgs(service.db)) == ["Flaky"]
    assert behaviour.calls == 3
    assert await read_dead_letters(kafka, ledgerlet.name, timeout_s=0.5) == []


async def test_a_handler_that_keeps_failing_dead_letters_and_replay_after_a_fix_works(
    service: ServiceRuntime, behaviour: Any, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    behaviour.fail_first = 3  # = handler_max_attempts
    org = uuid.uuid4()
    event = ledgerlet.created(org, "Stubborn")
    partition = await ledgerlet.send(producer, kafka, event.to_json(), str(org).encode())
    letters = await eventually(lambda: ledgerlet.letters(kafka, 1))
    assert letters[0].event_id == str(event.id)
    assert letters[0].error_kind == "failed" and letters[0].attempts == 3
    assert "induced failure" in letters[0].error
    assert await ledgerlet.orgs(service.db) == []

    # The "fix" is in (the handler no longer fails): replaying what the database kept (as
    # `hopcast dlq replay` does) handles it, once.
    stored = await stored_dead_letters(service.db.pool)  # type: ignore[arg-type]
    assert [s.event_id for s in stored] == [str(event.id)]
    async with service.db.transaction() as conn:
        assert await replay_stored(kafka, conn, stored) == 1
    assert await eventually(lambda: ledgerlet.orgs(service.db)) == ["Stubborn"]
    async with service.db.transaction() as conn:
        assert await replay_stored(kafka, conn, stored) == 1  # a second replay changes nothing
    marker_org = uuid.uuid4()
    await ledgerlet.send(
        producer, kafka, ledgerlet.created(marker_org, "Zmarker").to_json(), str(marker_org).encode(), partition
    )
    await eventually(lambda: ledgerlet.has(service.db, "Zmarker"))
    assert await ledgerlet.orgs(service.db) == ["Stubborn", "Zmarker"]


async def test_a_permanent_error_dead_letters_at_once(
    service: ServiceRuntime, behaviour: Any, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    behaviour.fail_first = 100
    behaviour.error = PermanentError
    org = uuid.uuid4()
    await ledgerlet.send(producer, kafka, ledgerlet.created(org, "Never").to_json(), str(org).encode())
    letters = await eventually(lambda: ledgerlet.letters(kafka, 1))
    assert letters[0].error_kind == "rejected" and letters[0].attempts == 1
    assert behaviour.calls == 1


async def test_an_unreachable_database_leaves_the_message_unacknowledged(
    service: ServiceRuntime, behaviour: Any, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    # Infrastructure errors never dead-letter: the offset is not committed, Kafka redelivers.
    behaviour.fail_first = 4  # more than handler_max_attempts (3): the first delivery gives up
    behaviour.error = ConnectionRefusedError
    org = uuid.uuid4()
    await ledgerlet.send(producer, kafka, ledgerlet.created(org, "Patient").to_json(), str(org).encode())
    assert await eventually(lambda: ledgerlet.orgs(service.db), within=45) == ["Patient"]
    assert behaviour.calls == 5  # 3 on the first delivery, 2 on the redelivery
    assert await read_dead_letters(kafka, ledgerlet.name, timeout_s=0.5) == []


async def test_a_unique_violation_is_retried_as_a_race_not_dead_lettered(
    service: ServiceRuntime, behaviour: Any, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    behaviour.fail_first = 1
    behaviour.error = asyncpg.UniqueViolationError
    org = uuid.uuid4()
    await ledgerlet.send(producer, kafka, ledgerlet.created(org, "Raced").to_json(), str(org).encode())
    assert await eventually(lambda: ledgerlet.orgs(service.db)) == ["Raced"]
    assert behaviour.calls == 2
    assert await read_dead_letters(kafka, ledgerlet.name, timeout_s=0.5) == []
