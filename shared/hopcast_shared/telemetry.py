"""Tracing: W3C trace context in Kafka headers, so one run is one trace across services.

Spans are always created (cheap with the no-op provider); they are exported over OTLP only
when OTEL_EXPORTER_OTLP_ENDPOINT is set. Messaging spans follow OpenTelemetry's messaging
semantic conventions (`messaging_attributes`: `process <topic>` for a consumed record, `send
<topic>` for the relay's publish, `create <topic>` where a trace starts); PostgreSQL and HTTP
client spans come from OpenTelemetry's own asyncpg and httpx instrumentations
(`instrument_clients`), on when spans are exported (OTEL_INSTRUMENT_CLIENTS to choose), and
only under a span of ours: a query or a call with no parent (the relay's polling) starts no
trace of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from hopcast_shared.settings import TelemetrySettings

Headers = Sequence[tuple[str, bytes]]
TRACE_HEADERS = ("traceparent", "tracestate")

tracer = trace.get_tracer("hopcast")


class _NoLoneClientSpans(Sampler):
    """The root sampler: a client span (a query, an HTTP call) with no parent is dropped, any
    other root span (a run's `create`, a consumed record with no trace context) recorded."""

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "NoLoneClientSpans"


def setup_tracing(service: str, settings: TelemetrySettings | None = None) -> TracerProvider:
    """Install a tracer provider for this process; export over OTLP when an endpoint is set."""
    settings = settings or TelemetrySettings()
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name or service}),
        sampler=ParentBased(root=_NoLoneClientSpans()),
    )
    exporting = bool(settings.otel_exporter_otlp_endpoint)
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    if settings.otel_instrument_clients if settings.otel_instrument_clients is not None else exporting:
        instrument_clients()
    return provider


def instrument_clients() -> None:
    """PostgreSQL (asyncpg) and HTTP (httpx) client spans, from OpenTelemetry's own
    instrumentations, under the current span; once per process."""
    # The current HTTP and database conventions (http.request.method, db.system.name...), not
    # the old ones the instrumentations still default to; an operator's own choice stands.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):  # type: ignore[no-untyped-call]
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument()


def messaging_attributes(
    operation: str,
    topic: str,
    *,
    partition: int | None = None,
    key: bytes | str | None = None,
    message_id: str | None = None,
    group: str | None = None,
) -> dict[str, str | int]:
    """A Kafka span's attributes by OpenTelemetry's messaging conventions (`operation`: send,
    process, create). The message key is left out unless it is short printable text (an
    organization id), so nothing else a record carries reaches a trace."""
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": topic,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
    if text is not None and len(text) <= 64 and text.isprintable() and "\ufffd" not in text:
        attributes["messaging.kafka.message.key"] = text
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    if group is not None:
        attributes["messaging.consumer.group.name"] = group
    return attributes


def inject_headers() -> list[tuple[str, str]]:
    """The current trace context as (name, value) pairs, to store with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v) for k, v in carrier.items() if k in TRACE_HEADERS]


def extract_context(headers: Iterable[tuple[str, bytes]] | None) -> otel_context.Context:
    """The trace context a Kafka message carries (an empty context when it has none)."""
    carrier = {k: v.decode("latin-1") for k, v in (headers or ()) if k in TRACE_HEADERS and v is not None}
    return propagate.extract(carrier)
