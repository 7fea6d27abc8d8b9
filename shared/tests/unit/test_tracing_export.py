"""Traces leave the process over OTLP only when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from hopcast_shared.settings import TelemetrySettings
from hopcast_shared.telemetry import setup_tracing


def _exporters(provider: TracerProvider) -> list[object]:
    processors = provider._active_span_processor._span_processors
    return [p.span_exporter for p in processors if isinstance(p, BatchSpanProcessor)]


def test_an_endpoint_adds_the_otlp_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318")
    provider = setup_tracing("billing", TelemetrySettings())
    try:
        exporters = _exporters(provider)
        assert len(exporters) == 1 and isinstance(exporters[0], OTLPSpanExporter)
        assert exporters[0]._endpoint == "http://otel-collector:4318/v1/traces"
        assert provider.resource.attributes["service.name"] == "billing"
    finally:
        provider.shutdown()


def test_no_endpoint_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    provider = setup_tracing("billing", TelemetrySettings(otel_service_name="billing-eu"))
    assert _exporters(provider) == []
    assert provider.resource.attributes["service.name"] == "billing-eu"
