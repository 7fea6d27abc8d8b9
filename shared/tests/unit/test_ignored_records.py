"""What a service reads but does not handle: a known type of the contract it has no handler for
is answered "ignored" where it stands, without touching the database or making a span (most of
what a service reads is that), and counted once per type; and `taken_on`, which types a service
takes from which of the topics it reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from hopcast_shared.consumer import EventConsumer
from hopcast_shared.contract import taken_on
from hopcast_shared.contract.examples import example_event
from hopcast_shared.settings import KafkaSettings, ServiceSettings
from hopcast_shared.testing import as_record, recorded_spans
from hopcast_shared.topics import ANALYTICS, BILLING, PUBLISHER, UPSTREAM


class NoDatabase:
    """A consumer's database that fails the test if it is used at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was used ({name}) for records the service ignores")


async def credits_granted(*_: Any) -> None:
    raise AssertionError("a handler ran for a record the service ignores")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


async def test_records_of_types_the_service_does_not_handle_are_ignored_with_no_span(
    spans: InMemorySpanExporter,
) -> None:
    consumer = EventConsumer(
        "ignores",
        NoDatabase(),  # type: ignore[arg-type]
        {"CreditsGranted": credits_granted},
        kafka=KafkaSettings(),
        settings=ServiceSettings(name="ignores", database_url="postgresql://unused/unused", http_port=18099),
    )
    records = [
        as_record(example_event("ScheduleRunCompleted"), topic=ANALYTICS),
        as_record(example_event("CreditsDebited"), topic=BILLING),
        as_record(example_event("ScheduleRunCompleted"), topic=ANALYTICS),
    ]
    assert await consumer.handle_batch(records) == ["ignored"] * 3
    assert spans.get_finished_spans() == ()
    labels = {"service": "ignores", "outcome": "ignored"}
    assert REGISTRY.get_sample_value("hopcast_messages_total", {**labels, "event_type": "ScheduleRunCompleted"}) == 2
    assert REGISTRY.get_sample_value("hopcast_messages_total", {**labels, "event_type": "CreditsDebited"}) == 1


def test_a_type_on_two_topics_read_is_taken_from_its_primary_one() -> None:
    handled = frozenset({"PostPublished", "ScheduleRunCompleted", "CreditsDebited"})
    taken = taken_on(handled, [UPSTREAM, BILLING, PUBLISHER, ANALYTICS])
    assert taken[PUBLISHER] == handled
    # Only the copy is left out: a handled type that does not travel on the topic stays, so that
    # parse_event refuses it there (wrong_topic) instead of ignoring a forgery.
    assert taken[ANALYTICS] == handled - {"PostPublished"}
    assert taken[UPSTREAM] == taken[BILLING] == handled
    # A service reading analytics.events alone takes PostPublished from it.
    assert taken_on(handled, [ANALYTICS]) == {ANALYTICS: handled}
