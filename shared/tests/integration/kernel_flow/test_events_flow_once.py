"""The kernel's way of an event, on the real broker and database: outbox -> Kafka -> inbox, a
second delivery with no second effect, and the trace context carried from the consumed event to
the emitted one. Through the test service of conftest.py ("ledgerlet").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from prometheus_client import REGISTRY

from hopcast_shared.service import ServiceRuntime
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.testing import eventually, read_topic
from hopcast_shared.topics import ANALYTICS, UPSTREAM

pytestmark = pytest.mark.integration


async def test_outbox_to_kafka_to_inbox_round_trip(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    org = uuid.uuid4()
    event = ledgerlet.created(org, "Acme")
    await ledgerlet.send(producer, kafka, event.to_json(), str(org).encode())

    assert await eventually(lambda: ledgerlet.orgs(service.db)) == ["Acme"]
    inbox = await service.db.pool.fetch("SELECT message_id, outcome FROM inbox")
    assert [(r["message_id"], r["outcome"]) for r in inbox] == [(str(event.id), "handled")]

    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
    assert len(out) == 1
    emitted = json.loads(out[0].value)
    assert emitted["type"] == "OrganizationRestored"
    assert emitted["causationid"] == str(event.id)
    assert out[0].key == str(org).encode()  # keyed by organization id
    assert await eventually(lambda: ledgerlet.outbox_empty(service.db))


async def test_the_same_event_delivered_twice_has_one_effect(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    counted = {"service": ledgerlet.name, "event_type": "OrganizationCreated"}

    def taken(outcome: str) -> float:
        return REGISTRY.get_sample_value("hopcast_messages_total", {**counted, "outcome": outcome}) or 0.0

    before = {outcome: taken(outcome) for outcome in ("handled", "duplicate")}
    org = uuid.uuid4()
    event = ledgerlet.created(org, "Twice")
    for _ in range(3):
        await ledgerlet.send(producer, kafka, event.to_json(), str(org).encode())

    # Every copy taken (the consumer's own count), whatever else it read meanwhile.
    async def all_taken() -> bool:
        return sum(taken(outcome) - n for outcome, n in before.items()) >= 3

    await eventually(all_taken)
    assert taken("handled") - before["handled"] == 1
    assert taken("duplicate") - before["duplicate"] == 2
    assert await ledgerlet.orgs(service.db) == ["Twice"]
    outcomes = await service.db.pool.fetchval("SELECT count(*) FROM inbox")
    assert outcomes == 1
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
    assert len(out) == 1


async def test_trace_context_flows_from_the_consumed_event_to_the_emitted_one(
    service: ServiceRuntime, producer: AIOKafkaProducer, kafka: KafkaSettings, ledgerlet: Any
) -> None:
    assert trace.get_tracer_provider().__class__.__name__ == "TracerProvider"  # the SDK's (root conftest)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    org = uuid.uuid4()
    await producer.send_and_wait(
        kafka.topic(UPSTREAM),
        ledgerlet.created(org, "Traced").to_json(),
        key=str(org).encode(),
        headers=[("traceparent", traceparent.encode())],
    )
    out = await read_topic(kafka, kafka.topic(ANALYTICS), expect=1)
    headers = dict(out[0].headers)
    assert headers["traceparent"].decode().split("-")[1] == trace_id
    assert headers["content-type"] == b"application/cloudevents+json"
