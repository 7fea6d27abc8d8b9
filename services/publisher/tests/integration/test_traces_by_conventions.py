"""One pending post's spans, read from the SDK as an exporter would get them, follow
OpenTelemetry's conventions: every messaging span (the consumed inputs, the relay's sends) has
the operation's name and type, its destination, partition, key and message id; the platform
call is a CLIENT span with the HTTP client spans of OpenTelemetry's httpx instrumentation under
it; the PostgreSQL spans of its asyncpg instrumentation sit under our spans; and all of it is
the run's one trace. On the real database and broker, against the fake Mastodon instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hopcast_publisher.adapters.platforms.http import AdapterOptions
from hopcast_publisher.adapters.platforms.mastodon import MastodonAdapter
from hopcast_publisher.testing import LOOPBACK_EGRESS, FakeMastodon, serve
from hopcast_shared.kafka import make_producer
from hopcast_shared.outbox import OutboxRelay
from hopcast_shared.telemetry import instrument_clients
from hopcast_shared.testing import as_record, recorded_spans
from hopcast_shared.topics import ensure_topics

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
TOPICS = {"post": "content.events", "debit": "billing.events"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended while the test runs, with the client instrumentations on."""
    with recorded_spans() as exporter:
        instrument_clients()
        try:
            yield exporter
        finally:
            AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
            HTTPXClientInstrumentor().uninstrument()  # type: ignore[no-untyped-call]


async def test_one_posts_spans_follow_the_conventions(
    harness_with: Any, stack: Any, spans: InMemorySpanExporter
) -> None:
    fake = FakeMastodon()
    kafka = stack.kafka_settings.model_copy(update={"topic_prefix": "t."})  # the harness's topics
    await ensure_topics(kafka)
    async with serve(fake) as base_url:
        adapter = MastodonAdapter(options=AdapterOptions(egress=LOOPBACK_EGRESS))
        h = harness_with({"MASTODON": adapter})
        tenant = await h.tenant()
        account = await tenant.account("MASTODON", default=True, token="good-access")  # noqa: S106
        await h.db.pool.execute(
            "UPDATE social_accounts SET api_base_url = $1 WHERE id = $2", base_url, uuid.UUID(account)
        )
        post = tenant.post_events(platforms=["MASTODON"])
        for name in ("post", "debit"):  # the run's inputs, in its trace
            record = as_record(post[name], topic=TOPICS[name], headers=[("traceparent", TRACEPARENT.encode())])
            assert await h.consumer.handle_record(record) == "handled"
        spans.clear()
        for name in ("post", "debit"):  # again, now watched: duplicates, handled as such
            record = as_record(post[name], topic=TOPICS[name], headers=[("traceparent", TRACEPARENT.encode())])
            assert await h.consumer.handle_record(record) == "duplicate"
        assert await h.publish() == 1
        await adapter.close()

    async def producer() -> Any:
        started = make_producer(kafka, "traces-test")
        await started.start()
        return started

    relay = OutboxRelay(h.db, producer, service="publisher", producer_spans=True)
    try:
        assert await relay.publish_batch() > 0
    finally:
        await relay.stop()
    assert len(fake.posts) == 1

    found: list[ReadableSpan] = list(spans.get_finished_spans())
    ours = [s for s in found if s.context is not None and format(s.context.trace_id, "032x") == TRACE_ID]
    messaging = [s for s in ours if (s.attributes or {}).get("messaging.system") == "kafka"]
    process = [s for s in messaging if s.kind == SpanKind.CONSUMER]
    send = [s for s in messaging if s.kind == SpanKind.PRODUCER]
    assert len(process) == 2 and send, [s.name for s in ours]
    for span in messaging:
        a = dict(span.attributes or {})
        operation = "process" if span.kind == SpanKind.CONSUMER else "send"
        assert span.name == f"{operation} {a['messaging.destination.name']}"
        assert (a["messaging.operation.name"], a["messaging.operation.type"]) == (operation, operation)
        assert a["messaging.kafka.message.key"] == tenant.org and uuid.UUID(str(a["messaging.message.id"]))
        assert "messaging.kafka.message.offset" not in a  # the deprecated name
    for span in process:
        a = dict(span.attributes or {})
        assert a["messaging.consumer.group.name"] == "publisher"
        assert a["messaging.destination.partition.id"] == "0" and isinstance(a["messaging.kafka.offset"], int)
    assert {dict(s.attributes or {})["messaging.message.type"] for s in send} >= {"PostPublished"}

    by_id = {s.context.span_id: s for s in ours if s.context is not None}

    def ancestors(span: ReadableSpan) -> Iterator[ReadableSpan]:
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    [call] = [s for s in ours if s.name == "publish MASTODON"]
    assert call.kind == SpanKind.CLIENT
    http = [s for s in ours if "http.request.method" in (s.attributes or {})]
    assert http and all(s.kind == SpanKind.CLIENT and call in ancestors(s) for s in http)
    assert {dict(s.attributes or {})["http.request.method"] for s in http} >= {"POST"}
    database = [
        s for s in ours if "postgresql" in {(s.attributes or {}).get(k) for k in ("db.system", "db.system.name")}
    ]
    assert database and all(s.kind == SpanKind.CLIENT for s in database)
    assert any(any(p in process for p in ancestors(s)) for s in database)  # the consumer's queries
    # A query with no span of ours above it (the relay's poll) starts no trace of its own.
    assert not [s for s in found if s.parent is None and s.kind == SpanKind.CLIENT]
