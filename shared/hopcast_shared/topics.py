"""Topic names of the contract (DESIGN.md "Topics") and the layout they are created with."""

from __future__ import annotations

from dataclasses import dataclass

from hopcast_shared.settings import SERVICES, KafkaSettings

UPSTREAM = "upstream.events"
SCHEDULER = "scheduler.events"
CONTENT = "content.events"
BILLING = "billing.events"
PUBLISHER = "publisher.events"
ANALYTICS = "analytics.events"

EVENT_TOPICS: tuple[str, ...] = (UPSTREAM, SCHEDULER, CONTENT, BILLING, PUBLISHER, ANALYTICS)


def dlq_topic(group: str) -> str:
    """A consumer group's dead-letter topic: `<group>.dlq`."""
    return f"{group}.dlq"


DLQ_TOPICS: tuple[str, ...] = tuple(dlq_topic(s) for s in SERVICES)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def topic_specs(kafka: KafkaSettings) -> list[TopicSpec]:
    """Every topic of the contract, with the prefix applied, partitions and retention explicit."""
    specs = [
        TopicSpec(
            kafka.topic(name),
            kafka.partitions,
            kafka.replication_factor,
            {"retention.ms": str(kafka.retention_ms), "cleanup.policy": "delete"},
        )
        for name in EVENT_TOPICS
    ]
    specs += [
        TopicSpec(
            kafka.topic(name),
            kafka.partitions,
            kafka.replication_factor,
            {"retention.ms": str(kafka.dlq_retention_ms), "cleanup.policy": "delete"},
        )
        for name in DLQ_TOPICS
    ]
    return specs
