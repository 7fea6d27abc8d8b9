"""Tracing: W3C trace context in Kafka headers, so one run is one trace across services.

Spans are always created (cheap with the no-op provider); they are exported over OTLP only
when OTEL_EXPORTER_OTLP_ENDPOINT is set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from hopcast_shared.settings import TelemetrySettings

Headers = Sequence[tuple[str, bytes]]
TRACE_HEADERS = ("traceparent", "tracestate")

tracer = trace.get_tracer("hopcast")


def setup_tracing(service: str, settings: TelemetrySettings | None = None) -> TracerProvider:
    """Install a tracer provider for this process; export over OTLP when an endpoint is set."""
    settings = settings or TelemetrySettings()
    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name or service}))
    if settings.otel_exporter_otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def inject_headers() -> list[tuple[str, str]]:
    """The current trace context as (name, value) pairs, to store with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v) for k, v in carrier.items() if k in TRACE_HEADERS]


def extract_context(headers: Iterable[tuple[str, bytes]] | None) -> otel_context.Context:
    """The trace context a Kafka message carries (an empty context when it has none)."""
    carrier = {k: v.decode("latin-1") for k, v in (headers or ()) if k in TRACE_HEADERS and v is not None}
    return propagate.extract(carrier)
