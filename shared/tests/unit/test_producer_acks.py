"""Every producer the kernel makes waits for all in-sync replicas (acks=all), said explicitly, and
the topics replicated three times need two of them (min.insync.replicas 2): together, a lost
broker loses no acknowledged event."""

from __future__ import annotations

from hopcast_shared.kafka import PRODUCER_ACKS, make_broker, make_producer
from hopcast_shared.settings import KafkaSettings
from hopcast_shared.topics import topic_specs


async def test_the_outbox_producer_waits_for_every_in_sync_replica() -> None:
    producer = make_producer(KafkaSettings(), "outbox")
    try:
        assert PRODUCER_ACKS == "all"
        assert producer._sender._acks == -1  # what aiokafka sends for "all"
    finally:
        await producer.stop()


def test_the_faststream_broker_producer_says_acks_all() -> None:
    broker = make_broker(KafkaSettings(), "billing")
    assert broker._connection_kwargs["acks"] == "all"
    assert broker._connection_kwargs["enable_idempotence"] is True


def test_topics_replicated_three_times_need_two_in_sync_replicas() -> None:
    replicated = topic_specs(KafkaSettings(replication_factor=3))
    assert {s.replication_factor for s in replicated} == {3}
    assert {s.config.get("min.insync.replicas") for s in replicated} == {"2"}
    single = topic_specs(KafkaSettings(replication_factor=1))
    assert all("min.insync.replicas" not in s.config for s in single)


def test_the_faststream_broker_bootstraps_from_every_server_of_the_list() -> None:
    """A cluster's bootstrap list reaches aiokafka as hosts, not as one host name with commas."""
    broker = make_broker(KafkaSettings(bootstrap_servers="127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"), "content")
    assert broker._connection_kwargs["bootstrap_servers"] == ["127.0.0.1:9092", "127.0.0.1:9094", "127.0.0.1:9096"]
