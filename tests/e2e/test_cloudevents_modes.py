"""Standard CloudEvents clients, live: an upstream producer that speaks binary mode through the
official SDK gets its saga run as one in structured mode does, and every message the services
write to the outbound topics, dead letters included, is read by the SDK's Kafka binding as it
comes off the broker (the unit tests, shared/tests/unit/test_cloudevents_sdk.py, do every type
and the round trips)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent

from hopcast_shared.contract import Envelope
from hopcast_shared.testing import eventually, read_topic
from hopcast_shared.topics import ANALYTICS, BILLING, CONTENT, PUBLISHER, dlq_topic
from hopcast_stack.harness import Dashboard, Tenant
from hopcast_stack.services import ServiceSet
from hopcast_stack.upstream import Message, Upstream

pytestmark = pytest.mark.e2e

BEANS = "Our single-origin beans come from one farm in Huila; we pay the farmers before the harvest."


def sdk_binary(event: Envelope) -> Message:
    """The event as the official SDK writes it in binary mode (attributes as ce_ headers)."""
    attributes = event.model_dump(mode="json", exclude={"data"}, exclude_none=True) | {"time": event.time}
    message = ce_kafka.to_binary_event(CloudEvent(attributes=attributes, data=event.data))
    return message.value, list(message.headers.items())


async def test_a_saga_sent_in_binary_mode_runs_as_one_in_structured_mode(
    hopcast: ServiceSet, dashboard: Dashboard
) -> None:
    async with Upstream(
        hopcast.kafka_as("upstream"), keyring=hopcast.keyring, observer=hopcast.kafka, encode=sdk_binary
    ) as upstream:
        t = Tenant(upstream, dashboard, hopcast)
        value, headers = upstream.encode(t.event("OrganizationCreated"))
        assert ("ce_specversion", b"1.0") in headers and b"specversion" not in value

        await t.create(credits=300, accounts=("MASTODON", "BLUESKY"), materials=(BEANS,))
        schedule = await t.schedule(["MASTODON", "BLUESKY"])
        await t.landed()
        run = await t.trigger(schedule)

        assert await dashboard.outcome(run) == "PUBLISHED"
    posts = dashboard.events("PostPublished", run=run, topic=PUBLISHER)
    assert sorted(p["data"]["platform"] for p in posts) == ["BLUESKY", "MASTODON"]
    assert await t.credits() == 297
    assert [d for d in dashboard.dead_letters() if t.org in json.dumps(d)] == []


async def test_every_message_off_the_outbound_topics_reads_with_the_sdk(
    hopcast: ServiceSet, dashboard: Dashboard, tenant: Callable[[], Tenant]
) -> None:
    t = tenant()
    await t.create(credits=300, accounts=("MASTODON",), materials=(BEANS,))
    schedule = await t.schedule(["MASTODON"])
    await t.landed()
    run = await t.trigger(schedule)
    assert await dashboard.outcome(run) == "PUBLISHED"
    # One event that breaks the contract, for a dead letter of this organization.
    async with Upstream(hopcast.kafka_as("upstream"), encode=_with_broken_schedule_id) as breaking:
        await breaking.send(t.event("ScheduleTriggerRequested", schedule_id=schedule))
    dlq = hopcast.kafka.topic(dlq_topic("scheduler"))

    async def dead_letter() -> list[ce_kafka.KafkaMessage]:
        records = await read_topic(hopcast.kafka, dlq, expect=1, within=1.0, settle_s=0.1)
        return [_message(r) for r in records if r.key == t.org.encode()]

    letters = await eventually(dead_letter, within=30)

    kinds: Counter[str] = Counter()
    for topic in (CONTENT, BILLING, PUBLISHER, ANALYTICS):
        records = await read_topic(hopcast.kafka, hopcast.kafka.topic(topic), expect=1, settle_s=0.5)
        for record in (r for r in records if r.key == t.org.encode()):
            message = _message(record)
            written = json.loads(message.value)
            event = ce_kafka.from_kafka_event(message)
            assert (event.get_type(), event.get_id(), event.get_source()) == (
                written["type"],
                written["id"],
                written["source"],
            )
            assert event.get_extension("organizationid") == t.org
            assert event.get_data() == written["data"]
            kinds[topic] += 1
    assert all(kinds[topic] > 0 for topic in (CONTENT, BILLING, PUBLISHER, ANALYTICS)), kinds

    event = ce_kafka.from_kafka_event(letters[0])
    assert event.get_type() == "hopcast.DeadLetter"
    assert event.get_data()["error_kind"] == "data"


def _with_broken_schedule_id(event: Envelope) -> Message:
    document = json.loads(event.to_json())
    document["data"]["schedule_id"] = "not-a-uuid"
    return json.dumps(document).encode(), [("content-type", b"application/cloudevents+json")]


def _message(record: ConsumerRecord[Any, Any]) -> ce_kafka.KafkaMessage:
    """A record as the SDK takes it (headers by name: the outbound ones are never repeated)."""
    headers = {name: value for name, value in record.headers if value is not None}
    return ce_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value)
