"""`hopcast topics`: what a deployment's one-shot job runs before the services."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hopcast_shared.topics_cli import app


def test_list_prints_every_topic_with_its_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("KAFKA_PARTITIONS", "12")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()]
    assert len(rows) == 10
    assert rows[0] == ["prod.upstream.events", "12", "3", "604800000"]
    assert ["prod.billing.dlq", "12", "3", "2592000000"] in rows


def test_create_gives_up_with_one_message_when_kafka_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    result = CliRunner().invoke(app, ["create", "--wait", "0"])
    assert result.exit_code == 1
    assert "Kafka at 127.0.0.1:1 not usable after 0s" in result.output
