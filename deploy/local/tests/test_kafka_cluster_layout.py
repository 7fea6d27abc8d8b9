"""The three-broker cluster's configuration (unit: nothing starts): one static KRaft quorum of
three combined-mode nodes, every replication 3 with min ISR 2, and the stack choosing it from
HOPCAST_KAFKA_BROKERS. The cluster itself runs in tests/chaos/test_broker_loss.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hopcast_shared.settings import SERVICES
from hopcast_stack.config import StackSettings
from hopcast_stack.kafka import KafkaServer
from hopcast_stack.kafka_cluster import KafkaCluster
from hopcast_stack.stack import Stack

PORTS = [(19192, 19193), (19194, 19195), (19196, 19197)]


def _props(server: KafkaServer) -> dict[str, str]:
    server.write_properties()
    lines = server.properties_file.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.fixture
def no_kafka_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "HOPCAST_KAFKA_BROKERS"):
        monkeypatch.delenv(name, raising=False)
    for service in SERVICES:
        monkeypatch.delenv(f"{service.upper()}_DATABASE_URL", raising=False)
    monkeypatch.setenv("HOPCAST_STATE_DIR", str(tmp_path / "state"))
    return monkeypatch


def test_every_node_votes_in_one_static_quorum_and_replicates_three_times(tmp_path: Path) -> None:
    cluster = KafkaCluster(home=tmp_path / "cluster", ports_by_node=PORTS)
    voters = "1@127.0.0.1:19193,2@127.0.0.1:19195,3@127.0.0.1:19197"
    seen_ports = set()
    for node_id, node in enumerate(cluster.nodes, 1):
        props = _props(node)
        assert props["node.id"] == str(node_id)
        assert props["process.roles"] == "broker,controller"
        assert props["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in props
        for key in (
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
        ):
            assert props[key] == "3", key
        assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
        # Authentication and ACLs as on the single broker.
        assert props["authorizer.class.name"].endswith("StandardAuthorizer")
        assert props["allow.everyone.if.no.acl.found"] == "false"
        assert (
            props["listeners"]
            == f"SASL_PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        )
        assert props["log.dirs"] == str(tmp_path / "cluster" / f"node-{node_id}" / "data")
        seen_ports |= set(node.ports)
        assert node.log_file.name == f"kafka-{node_id}.log"
    assert len(seen_ports) == 6
    # One cluster id and one set of credentials, shared by the nodes.
    assert len({n.cluster_id() for n in cluster.nodes}) == 1
    assert len({n.credentials.password("broker") for n in cluster.nodes}) == 1


def test_a_client_of_the_cluster_knows_every_node_and_creates_topics_replicated_three_times(tmp_path: Path) -> None:
    cluster = KafkaCluster(home=tmp_path / "cluster", ports_by_node=PORTS)
    settings = cluster.client_settings("billing", topic_prefix="p.")
    assert settings.bootstrap_servers == "127.0.0.1:19192,127.0.0.1:19194,127.0.0.1:19196"
    assert settings.replication_factor == 3
    assert settings.sasl_username == "billing"
    assert settings.topic_prefix == "p."


def test_the_single_broker_stays_the_default_and_three_is_chosen_by_a_setting(
    no_kafka_env: pytest.MonkeyPatch,
) -> None:
    single = Stack(StackSettings())
    assert isinstance(single.kafka, KafkaServer)
    assert single.kafka_as("admin").replication_factor == 1

    no_kafka_env.setenv("HOPCAST_KAFKA_BROKERS", "3")
    stack = Stack(StackSettings())
    assert isinstance(stack.kafka, KafkaCluster)
    assert [node.ports for node in stack.kafka.nodes] == [(9092, 9093), (9094, 9095), (9096, 9097)]
    kafka = stack.kafka_as("content")
    assert kafka.bootstrap_servers == stack.kafka.bootstrap
    assert kafka.replication_factor == 3
    assert [p.name for p in stack.status()][:3] == ["kafka-1", "kafka-2", "kafka-3"]

    no_kafka_env.setenv("HOPCAST_KAFKA_BROKERS", "2")
    with pytest.raises(ValidationError):
        StackSettings()
