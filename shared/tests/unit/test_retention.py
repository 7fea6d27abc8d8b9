"""How long the inbox keeps handled ids: as long as Kafka can deliver a message again."""

from __future__ import annotations

from hopcast_shared.retention import inbox_retention_days
from hopcast_shared.settings import KafkaSettings

DAY_MS = 24 * 3600 * 1000


def test_the_inbox_keeps_ids_as_long_as_the_longer_of_the_topic_and_dlq_retentions() -> None:
    assert inbox_retention_days(KafkaSettings()) == 30  # the DLQ's 30 days beat the topics' 7
    assert inbox_retention_days(KafkaSettings(retention_ms=45 * DAY_MS, dlq_retention_ms=DAY_MS)) == 45
    # A part of a day counts as a whole one: an id is never forgotten while it can come back.
    assert inbox_retention_days(KafkaSettings(retention_ms=DAY_MS + 1, dlq_retention_ms=60_000)) == 2
