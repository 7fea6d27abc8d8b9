"""Repository-wide test setup: real tracing (the SDK provider, exporting nowhere) for every test."""

from __future__ import annotations

from hopcast_shared.settings import TelemetrySettings
from hopcast_shared.telemetry import setup_tracing

setup_tracing("tests", TelemetrySettings(otel_exporter_otlp_endpoint=None))
