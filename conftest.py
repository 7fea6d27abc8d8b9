"""Repository-wide test setup.

Real tracing (the SDK provider, exporting nowhere) for every test; and, on the session's
real stack (the `stack` fixture of hopcast_stack's pytest plugin), per-test isolation:
topics under a unique prefix and a fresh database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from hopcast_shared.kafka import connection_kwargs
from hopcast_shared.settings import KafkaSettings, TelemetrySettings
from hopcast_shared.telemetry import setup_tracing
from hopcast_shared.topics import ensure_topics

setup_tracing("tests", TelemetrySettings(otel_exporter_otlp_endpoint=None))


@pytest.fixture
async def kafka(stack: Any) -> KafkaSettings:
    """KafkaSettings whose topics are this test's alone (a unique prefix), already created."""
    settings = stack.kafka_settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}.", "partitions": 3})
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def database_url(stack: Any) -> str:
    """A fresh, empty database (pgvector available) for this test."""
    return await stack.new_database("test")


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer, as an upstream system would use."""
    p = AIOKafkaProducer(enable_idempotence=True, **connection_kwargs(kafka))
    await p.start()
    yield p
    await p.stop()
