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
    """Every topic of the contract, with the prefix applied, partitions and retention explicit.

    Replicated three times or more, a topic takes a write only when two replicas have it
    (`min.insync.replicas` 2, with the producers' acks=all): losing one broker loses nothing
    acknowledged, and the topic stays writable."""
    durability = {"min.insync.replicas": "2"} if kafka.replication_factor >= 3 else {}

    def spec(name: str, retention_ms: int) -> TopicSpec:
        config = {"retention.ms": str(retention_ms), "cleanup.policy": "delete", **durability}
        return TopicSpec(kafka.topic(name), kafka.partitions, kafka.replication_factor, config)

    return [spec(name, kafka.retention_ms) for name in EVENT_TOPICS] + [
        spec(name, kafka.dlq_retention_ms) for name in DLQ_TOPICS
    ]


async def ensure_topics(kafka: KafkaSettings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create the topics that do not exist yet (idempotent); returns the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from hopcast_shared.kafka import connection_kwargs

    specs = specs if specs is not None else topic_specs(kafka)
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config) for s in missing]
            )
            for name, code, *rest in response.topic_errors:
                # Another process may have created it meanwhile: that is fine.
                if code not in (0, TopicAlreadyExistsError.errno):
                    detail = rest[0] if rest else ""
                    raise RuntimeError(f"creating topic {name} failed: error {code} {detail}")
        return [s.name for s in missing]
    finally:
        await admin.close()
