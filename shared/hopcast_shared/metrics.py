"""Prometheus metrics every service exports on /metrics (labels: service, event type, outcome)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter(
    "hopcast_messages_total",
    "Kafka messages a consumer took, by outcome (handled, duplicate, ignored, dead_lettered, retried)",
    ["service", "event_type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "hopcast_handler_seconds",
    "Time to handle one event, transaction included",
    ["service", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PUBLISHED = Counter("hopcast_outbox_published_total", "Outbox rows Kafka acknowledged", ["service"])
OUTBOX_PARKED = Counter("hopcast_outbox_parked_total", "Outbox rows Kafka refused for good", ["service"])
OUTBOX_BACKLOG = Gauge("hopcast_outbox_backlog", "Outbox rows waiting to be published", ["service"])
OUTBOX_OLDEST_AGE = Gauge("hopcast_outbox_oldest_age_seconds", "Age of the oldest waiting outbox row", ["service"])
CONSUMER_LAG = Gauge(
    "hopcast_consumer_lag",
    "Messages the service's consumer group has yet to handle: log end offset minus committed offset",
    ["service", "topic"],
)
READY = Gauge(
    "hopcast_ready",
    "1 when the service's last readiness check passed (database, broker, outbox relay), else 0",
    ["service"],
)
